"""`make run`'s launcher (common/launch.py) as a user runs it: the four apps forked from one parent on SQLite
in a folder of the test's own and free ports; the marketplace ready through the gateway, each app a child
of the launcher (which has become its small supervisor) and named after its app; SIGTERM stops them all
and the launcher exits 0; an app that dies unasked takes the others down and the launcher exits non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.databases import sqlite_urls
from tests.support.servers import ROOT, free_port

MODULES = {"gateway": "gateway", "catalog": "services.catalog", "orders": "services.orders",
           "notify": "services.notify"}


def _launch(folder: Path) -> tuple[subprocess.Popen, str, Path]:
    ports = {app: free_port() for app in MODULES}
    url = {app: f"http://127.0.0.1:{port}" for app, port in ports.items()}
    dbs = sqlite_urls(folder)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_"))}
    env.update(PYTHONPATH=str(ROOT), LOG_LEVEL="INFO", ENVIRONMENT="development", SMTP_URL="",
               CATALOG_MEDIA_DIR=str(folder / "media"), CATALOG_NOTIFY_URL=url["notify"],
               CATALOG_PUBLIC_BASE_URL=url["gateway"], ORDERS_CATALOG_URL=url["catalog"],
               ORDERS_NOTIFY_URL=url["notify"], ORDERS_PUBLIC_BASE_URL=url["gateway"],
               GATEWAY_CATALOG_URL=url["catalog"], GATEWAY_ORDERS_URL=url["orders"],
               GATEWAY_NOTIFY_URL=url["notify"])
    for app in MODULES:
        env.update({f"{app.upper()}_DATABASE_URL": dbs[app], f"{app.upper()}_PORT": str(ports[app])})
    log = folder / "launch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "common.launch", *MODULES.values()], cwd=folder, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, url["gateway"], log


def _ready(proc: subprocess.Popen, gateway: str, log: Path, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the launcher exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            reply = httpx.get(f"{gateway}/readyz", timeout=2)
            if reply.status_code == 200:
                return reply.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _apps(proc: subprocess.Popen) -> dict[str, psutil.Process]:
    return {p.name(): p for p in psutil.Process(proc.pid).children()}


@pytest.fixture
def launched(tmp_path):
    proc, gateway, log = _launch(tmp_path)
    try:
        yield proc, gateway, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_four_apps_from_one_parent_stopped_by_sigterm(launched) -> None:
    proc, gateway, log = launched
    ready = _ready(proc, gateway, log)
    assert ready["status"] == "ok" and set(ready["services"].values()) == {"ok"}

    apps = _apps(proc)
    assert sorted(apps) == ["catalog", "gateway", "notify", "orders"]
    assert all(p.ppid() == proc.pid for p in apps.values())
    launcher = psutil.Process(proc.pid)
    assert "--supervise" in launcher.cmdline()  # the parent became the supervisor: a small process
    assert launcher.memory_info().rss < 40 * 2**20
    text = log.read_text()
    for service in ("gateway", "catalog", "orders", "notify"):  # each app's lines name it
        assert f" {service} [-] Application startup complete." in text

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    _, alive = psutil.wait_procs(list(apps.values()), timeout=5)
    assert not alive
    assert "Application shutdown complete." in log.read_text()


def test_an_app_that_dies_stops_the_others(launched) -> None:
    proc, gateway, log = launched
    _ready(proc, gateway, log)
    apps = _apps(proc)
    apps["orders"].kill()
    assert proc.wait(30) == 128 + signal.SIGKILL
    _, alive = psutil.wait_procs([p for name, p in apps.items() if name != "orders"], timeout=5)
    assert not alive
    assert "services.orders" in log.read_text().split("exited with status")[0].splitlines()[-1]


def test_the_parent_runs_each_apps_prefork_before_forking() -> None:
    """What the catalog and the gateway load lazily is loaded in the parent, shared by the children."""
    probe = ("import sys, threading; from common.launch import preload; preload(['gateway', 'services.catalog']); "
             "from gateway.identity.passwords import common_passwords; "
             "assert 'PIL.Image' in sys.modules and 'pillow_heif' in sys.modules; "
             "assert common_passwords.cache_info().currsize == 1; assert threading.active_count() == 1")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
