"""API keys (stored as SHA-256 hashes, never in clear) and roles; the rate limit is in `bento.rate_limit`.

Keys are random 256-bit tokens, so a fast hash is the right one: nothing to brute-force, and a lookup costs
microseconds. Create one with `python -m bento.security new-key --id alice --role reader --keys-file data/api_keys.json`
and (re)start the service with `STOCKPRED_API_KEYS_FILE=data/api_keys.json`; keys are read once, at start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

ROLES = ("reader", "admin")  # each role may do what the ones before it may
KEY_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
TOKEN_PREFIX = "spk_"


class KeyConfigError(ValueError):
    pass


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class ApiKey:
    """Who calls: an API key, or the subject of a verified bearer token (`auth="jwt"`, id `jwt:<subject>`)."""

    id: str
    role: str
    rate_per_second: float | None = None  # None: the service default
    burst: int | None = None
    auth: str = "key"  # "key" (an API key) or "jwt"
    subject: str | None = None
    expires_at: float | None = None  # a token's `exp` (push streams end there)


def _entry(raw: dict, where: str) -> tuple[str, ApiKey]:
    try:
        key_id, role, digest = str(raw["id"]), str(raw["role"]), str(raw["sha256"]).lower()
    except KeyError as exc:
        raise KeyConfigError(f"{where}: an entry lacks {exc.args[0]!r} (needs id, role, sha256)") from None
    if not KEY_ID.match(key_id):
        raise KeyConfigError(f"{where}: bad key id {key_id!r}")
    if role not in ROLES:
        raise KeyConfigError(f"{where}: key {key_id!r} has role {role!r}, not one of {ROLES}")
    if not SHA256.match(digest):
        raise KeyConfigError(f"{where}: key {key_id!r} needs the hex SHA-256 of the token, not the token itself")
    rate = raw.get("rate_per_second")
    burst = raw.get("burst")
    return digest, ApiKey(key_id, role, float(rate) if rate is not None else None, int(burst) if burst else None)


class KeyStore:
    """Hash -> key. `authenticate` hashes what the client sent and looks the digest up."""

    def __init__(self, entries: dict[str, ApiKey]) -> None:
        self._by_hash = dict(entries)
        ids = [k.id for k in entries.values()]
        if len(ids) != len(set(ids)):
            raise KeyConfigError("two API keys share an id")

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, token: str) -> ApiKey | None:
        return self._by_hash.get(hash_key(token))

    @classmethod
    def load(cls, keys_file: str | None, inline: str | None) -> KeyStore:
        entries: dict[str, ApiKey] = {}
        if keys_file:
            path = Path(keys_file)
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise KeyConfigError(f"cannot read API keys file {path}: {exc}") from exc
            rows = data.get("keys", []) if isinstance(data, dict) else data
            if not isinstance(rows, list):
                raise KeyConfigError(f"{path}: expected a list of keys or {{'keys': [...]}}")
            entries.update(_entry(row, str(path)) for row in rows)
        for item in (inline or "").split(","):
            if item.strip():
                parts = item.strip().split(":")
                if len(parts) not in (3, 4):
                    raise KeyConfigError("STOCKPRED_API_KEYS entries are id:role:sha256[:rate_per_second]")
                raw = dict(zip(("id", "role", "sha256", "rate_per_second"), parts, strict=False))
                entries.update([_entry(raw, "STOCKPRED_API_KEYS")])
        return cls(entries)


def add_to_keys_file(path: Path, entry: dict) -> None:
    """Append `entry` to the JSON keys file at `path` (created when missing); an existing id is refused."""
    rows: list = []
    if path.exists():
        data = json.loads(path.read_text() or "[]")
        rows = data.get("keys", []) if isinstance(data, dict) else data
    if any(row.get("id") == entry["id"] for row in rows):
        raise KeyConfigError(f"{path} already has a key with id {entry['id']!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*rows, entry], indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Create an API key for the prediction service")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-key", help="print a new token (shown once) and the entry to store")
    new.add_argument("--id", required=True)
    new.add_argument("--role", choices=ROLES, default="reader")
    new.add_argument("--rate-per-second", type=float)
    new.add_argument("--keys-file", type=Path, help="add the entry to this JSON keys file (created when missing)")
    args = parser.parse_args()
    if not KEY_ID.match(args.id):
        parser.error(f"bad key id {args.id!r}: letters, digits and _.@- only")
    token = new_token()
    entry = {"id": args.id, "role": args.role, "sha256": hash_key(token)}
    if args.rate_per_second:
        entry["rate_per_second"] = args.rate_per_second
    inline = f"{args.id}:{args.role}:{entry['sha256']}" + (f":{args.rate_per_second:g}" if args.rate_per_second else "")
    print(f"token (give it to the client; it is not stored anywhere): {token}")
    if args.keys_file:
        add_to_keys_file(args.keys_file, entry)
        where = args.keys_file.resolve()
        print(f"added key {args.id!r} to {where}")
        print("The key is active once the service (re)starts with that file, e.g.:")
        print(f"  STOCKPRED_API_KEYS_FILE={where} make serve")
    else:
        print(f"keys-file entry: {json.dumps(entry)}")
        print("The key is not active yet. Either add the entry to the JSON list in the file STOCKPRED_API_KEYS_FILE")
        print("names (or rerun with --keys-file PATH to do it), or append it to STOCKPRED_API_KEYS:")
        print(f"  STOCKPRED_API_KEYS={inline}")
        print("then restart the service with that variable set (keys are read once, at start).")


if __name__ == "__main__":
    main()
