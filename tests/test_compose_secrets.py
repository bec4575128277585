"""deploy/compose_secrets.py: the secret files of the compose shape, read by the apps as compose mounts
them (SECRETS_DIR), never overwritten, and rotated without losing what the old keys made."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from common.keys import private_key_from_text, public_key_text
from deploy import compose_secrets
from gateway.settings import GatewaySettings
from services.orders.settings import OrdersSettings

SCRIPT = Path(compose_secrets.__file__)


def run(*args: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--dir", str(folder), *args], capture_output=True,
                          text=True, timeout=60, cwd=SCRIPT.parents[1])


def read(folder: Path, name: str) -> str:
    return (folder / name).read_text().strip()


def test_makes_every_file_once_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    first = run(folder=folder)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(compose_secrets.names())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # the folder keeps the host's other users out
    before = {name: read(folder, name) for name in compose_secrets.names()}
    assert len(set(before.values())) == len(before)  # every value its own
    (folder / "NOTIFY_DATA_KEY").unlink()
    again = run(folder=folder)
    assert again.returncode == 0 and "1 made" in again.stderr, again.stderr
    after = {name: read(folder, name) for name in compose_secrets.names()}
    assert {k: v for k, v in after.items() if k != "NOTIFY_DATA_KEY"} == \
        {k: v for k, v in before.items() if k != "NOTIFY_DATA_KEY"}
    assert after["NOTIFY_DATA_KEY"] != before["NOTIFY_DATA_KEY"]
    for app in compose_secrets.APPS:  # each URL carries its own role's password
        password = read(folder, f"{app.upper()}_DB_PASSWORD")
        assert read(folder, f"{app.upper()}_DATABASE_URL") == \
            f"postgresql+asyncpg://{app}:{password}@postgres:5432/{app}"
    assert public_key_text(private_key_from_text(before["GATEWAY_JWT_PRIVATE_KEY"]).public_key()) == \
        before["JWT_PUBLIC_KEY"]


def test_refuses_half_a_signing_pair(tmp_path: Path) -> None:
    compose_secrets.make(tmp_path)
    (tmp_path / "JWT_PUBLIC_KEY").unlink()
    done = run(folder=tmp_path)
    assert done.returncode != 0 and "only one half of the signing key pair" in done.stderr
    assert not (tmp_path / "JWT_PUBLIC_KEY").exists()


def test_the_apps_read_the_files_as_compose_mounts_them(tmp_path: Path) -> None:
    compose_secrets.make(tmp_path)
    env = {"ENVIRONMENT": "production", "SECRETS_DIR": str(tmp_path)}
    with mock.patch.dict(os.environ, env, clear=True):
        orders = OrdersSettings(_env_file=None)
        gateway = GatewaySettings(_env_file=None)
    assert orders.service_token.get_secret_value() == read(tmp_path, "SERVICE_TOKEN")
    assert orders.database_url == read(tmp_path, "ORDERS_DATABASE_URL")
    assert gateway.metrics_token.get_secret_value() == read(tmp_path, "METRICS_TOKEN")


@pytest.mark.parametrize("name", ["ORDERS_DATA_KEY", "GATEWAY_JWT_PRIVATE_KEY"])
def test_rotate_puts_a_fresh_key_first_and_retire_keeps_it_alone(tmp_path: Path, name: str) -> None:
    compose_secrets.make(tmp_path)
    moved = [name, "JWT_PUBLIC_KEY"] if name == "GATEWAY_JWT_PRIVATE_KEY" else [name]
    old = {key: read(tmp_path, key) for key in moved}
    done = run("--rotate", name, folder=tmp_path)
    assert done.returncode == 0, done.stderr
    for key in moved:
        values = read(tmp_path, key).split(",")
        assert len(values) == 2 and values[1] == old[key] and values[0] != old[key]
    if name == "GATEWAY_JWT_PRIVATE_KEY":  # the new private key's public half is the new first public key
        first_private = read(tmp_path, name).split(",")[0]
        assert public_key_text(private_key_from_text(first_private).public_key()) == \
            read(tmp_path, "JWT_PUBLIC_KEY").split(",")[0]
    env = {"ENVIRONMENT": "production", "SECRETS_DIR": str(tmp_path)}
    with mock.patch.dict(os.environ, env, clear=True):  # the apps take the list as it is
        OrdersSettings(_env_file=None)
        GatewaySettings(_env_file=None)
    fresh = {key: read(tmp_path, key).split(",")[0] for key in moved}
    assert run("--retire", name, folder=tmp_path).returncode == 0
    assert {key: read(tmp_path, key) for key in moved} == fresh


def test_only_the_rotated_keys_rotate(tmp_path: Path) -> None:
    compose_secrets.make(tmp_path)
    done = run("--rotate", "SERVICE_TOKEN", folder=tmp_path)
    assert done.returncode != 0 and "does not rotate" in done.stderr
