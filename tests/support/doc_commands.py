"""The shell commands of README.md and docs/*.md, for the tests that run them as written.

A command is a line of a ```bash or ```sh block (a trailing `  # comment` and backslash continuations folded), or a
`$ ` line of a ```console block (the lines after it are its output). A test gets the commands it runs with
`doc_command(pattern)` / `doc_commands(pattern)`; tests/test_docs.py fails for a command no such call matches.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from support import ROOT

FENCE = re.compile(r"^```(bash|sh|console)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
COMMENT = re.compile(r"\s+#\s.*$")  # `cmd   # why`: a comment after two or more spaces


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def commands_in(text: str) -> list[str]:
    found = []
    for kind, body in FENCE.findall(text):
        lines = body.replace("\\\n", " ").splitlines()
        if kind == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        for line in lines:
            command = COMMENT.sub("", line).strip()
            if command and not command.startswith("#"):
                found.append(command)
    return found


def all_commands(root: Path = ROOT) -> dict[str, list[str]]:
    """Every command -> the files (relative to `root`) that show it."""
    commands: dict[str, list[str]] = {}
    for path in doc_files(root):
        for command in commands_in(path.read_text()):
            commands.setdefault(command, []).append(str(path.relative_to(root)))
    return commands


def doc_commands(pattern: str, root: Path = ROOT) -> list[str]:
    """The commands `pattern` (a regex) finds; at least one, or the docs no longer show what the caller runs."""
    found = [command for command in all_commands(root) if re.search(pattern, command)]
    assert found, f"no command in README.md or docs/*.md matches {pattern!r}"
    return found


def doc_command(pattern: str, root: Path = ROOT) -> str:
    """The one command `pattern` finds."""
    found = doc_commands(pattern, root)
    assert len(found) == 1, f"{pattern!r} matches {len(found)} commands: {found}"
    return found[0]


def doc_options(pattern: str, words: int = 2) -> dict[str, str | None]:
    """The `--option value` pairs of the one command `pattern` finds, after its first `words` words (the program and
    its subcommand), a flag without a value as None: a test swaps in its own values and runs the rest as documented
    (`as_argv`)."""
    parts = shlex.split(doc_command(pattern))[words:]
    options: dict[str, str | None] = {}
    for i, part in enumerate(parts):
        if part.startswith("--"):
            following = parts[i + 1] if i + 1 < len(parts) else "--"
            options[part] = None if following.startswith("--") else following
        else:
            assert i and parts[i - 1].startswith("--"), f"{part!r} follows no option in {parts}"
    return options


def as_argv(options: dict[str, str | None]) -> list[str]:
    return [part for name, value in options.items() for part in ((name,) if value is None else (name, value))]
