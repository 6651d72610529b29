"""Where the Debian PostgreSQL server binaries are."""

import shutil
from pathlib import Path


def postgres_bindir() -> Path | None:
    """The newest Debian `postgresql` server binaries, else whatever `initdb` is on PATH."""
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parts[-3].isdigit()]
    if versions:
        return max(versions, key=lambda p: int(p.parts[-3])).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None
