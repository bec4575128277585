"""The secrets of the compose install, one file per setting, made with fresh random values.

    .venv/bin/python deploy/compose_secrets.py                 # makes ./secrets/ (missing files only)
    .venv/bin/python deploy/compose_secrets.py --rotate ORDERS_DATA_KEY
    .venv/bin/python deploy/compose_secrets.py --retire ORDERS_DATA_KEY

docker-compose.yml mounts each file into the containers that read it, as ``/run/secrets/<NAME>``
(compose's ``secrets:``): the apps read them through ``SECRETS_DIR=/run/secrets``, the postgres
image through ``POSTGRES_PASSWORD_FILE`` and its init script. No secret is an environment variable,
so none shows in ``docker inspect`` or in a process listing.

A file that exists is never overwritten: run it again after an upgrade and it adds only what is new.
Each database URL is made from that role's password file, so the two always agree. The keys that
rotate (the data keys, GATEWAY_JWT_PRIVATE_KEY with JWT_PUBLIC_KEY) are comma-separated lists,
newest first: ``--rotate`` puts a fresh key first and keeps the old ones after it (whatever they
encrypted or signed still reads), ``--retire`` keeps the first only, once ``python -m <app> reencrypt``
has run (docs/operations.md, "Rotating keys"). Back the folder up: without the data keys, what they
encrypted cannot be read.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.keys import private_key_text, public_key_text
from services.notify.push.vapid import new_private_key as vapid_key

APPS = ("gateway", "catalog", "orders", "notify")
ROTATED = ("CATALOG_DATA_KEY", "ORDERS_DATA_KEY", "NOTIFY_DATA_KEY", "GATEWAY_JWT_PRIVATE_KEY")
DATABASE_HOST = "postgres:5432"  # the compose service


def _signing_pair() -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    return {"GATEWAY_JWT_PRIVATE_KEY": private_key_text(key), "JWT_PUBLIC_KEY": public_key_text(key.public_key())}


def _made(name: str) -> str:
    if name == "NOTIFY_VAPID_PRIVATE_KEY":
        return vapid_key()
    if name == "POSTGRES_PASSWORD" or name.endswith("_DB_PASSWORD"):
        return secrets.token_hex(24)  # URL-safe: it goes into a database URL as it is
    return secrets.token_hex(32)


def names() -> list[str]:
    """Every file the compose install mounts."""
    return ["SERVICE_TOKEN", "METRICS_TOKEN", "GATEWAY_JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY",
            "CATALOG_DATA_KEY", "ORDERS_DATA_KEY", "NOTIFY_DATA_KEY", "NOTIFY_VAPID_PRIVATE_KEY",
            "POSTGRES_PASSWORD", *(f"{app.upper()}_DB_PASSWORD" for app in APPS),
            *(f"{app.upper()}_DATABASE_URL" for app in APPS)]


def _read(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8").strip()


def _write(folder: Path, name: str, value: str) -> None:
    """Written whole or not at all (a temporary file renamed). Compose bind-mounts each file as it is,
    and the apps run as their own user (uid 10001) in the container, so the file is 0644; on the host
    the folder (0700) keeps everyone else out."""
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    os.replace(tmp, folder / name)


def make(folder: Path) -> list[str]:
    """The files missing from ``folder``, made; returns their names."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    missing = [name for name in names() if not (folder / name).exists()]
    pair = {"GATEWAY_JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY"}
    if len(pair & set(missing)) == 1:
        raise SystemExit(f"compose_secrets.py: {folder} holds only one half of the signing key pair "
                         f"({', '.join(sorted(pair - set(missing)))}); restore the other from your backup")
    values = _signing_pair() if pair <= set(missing) else {}
    for name in missing:
        if name.endswith("_DATABASE_URL"):
            continue
        _write(folder, name, values.get(name) or _made(name))
    for name in missing:
        if name.endswith("_DATABASE_URL"):
            app = name.removesuffix("_DATABASE_URL").lower()
            password = _read(folder, f"{app.upper()}_DB_PASSWORD")
            _write(folder, name, f"postgresql+asyncpg://{app}:{password}@{DATABASE_HOST}/{app}")
    return missing


def rotate(folder: Path, name: str, *, retire: bool = False) -> None:
    if name not in ROTATED:
        raise SystemExit(f"compose_secrets.py: {name} does not rotate (one of {', '.join(ROTATED)})")
    moved = [name, "JWT_PUBLIC_KEY"] if name == "GATEWAY_JWT_PRIVATE_KEY" else [name]
    current = {}
    for key in moved:
        if not (folder / key).exists():
            raise SystemExit(f"compose_secrets.py: {folder / key} does not exist")
        current[key] = [part.strip() for part in _read(folder, key).split(",") if part.strip()]
    fresh = _signing_pair() if name == "GATEWAY_JWT_PRIVATE_KEY" else {name: _made(name)}
    for key, values in current.items():
        _write(folder, key, ",".join(values[:1] if retire else [fresh[key], *values]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("secrets"), help="where the files are (./secrets)")
    parser.add_argument("--rotate", metavar="NAME", help="put a fresh key first, keep the old ones after it")
    parser.add_argument("--retire", metavar="NAME", help="keep only the first key")
    args = parser.parse_args(argv)
    if args.rotate or args.retire:
        rotate(args.dir, args.rotate or args.retire, retire=bool(args.retire))
        print(f"compose_secrets.py: {args.rotate or args.retire} in {args.dir} "
              f"{'retired to its first key' if args.retire else 'has a fresh key first'}; "
              "restart the apps (docker compose up -d)")
        return
    made = make(args.dir)
    print(f"compose_secrets.py: {len(made)} made in {args.dir}/"
          + (f" ({', '.join(made)})" if made else ", nothing was missing"), file=sys.stderr)


if __name__ == "__main__":
    main()
