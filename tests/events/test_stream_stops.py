"""A notify replica, or a gateway replica, told to stop (SIGTERM) ends its open live streams at once,
so that their clients reconnect (with Last-Event-ID) to another replica, rather than holding the
shutdown for its grace period (10 s) and being cut off at its end."""

from __future__ import annotations

import time

import httpx

from tests.apps import PRIVATE_KEY, PUBLIC_KEY
from tests.support.auth import auth
from tests.support.processes import AppProcess


def test_sigterm_ends_the_open_streams_at_once(tmp_path) -> None:
    env = {"NOTIFY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}", "JWT_PUBLIC_KEY": PUBLIC_KEY,
           "NOTIFY_STREAM_HEARTBEAT": "30"}
    notify = AppProcess("services.notify", env, tmp_path)
    notify.start()
    try:
        with httpx.Client(base_url=notify.url, timeout=20) as client, \
                client.stream("GET", "/api/v1/notifications/stream", headers=auth("grower-stop-1")) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert next(lines).startswith("retry:")
            asked = time.monotonic()
            notify.proc.send_signal(15)  # SIGTERM, to the server process alone
            for _ in lines:
                pass  # the stream ends (not an error: a whole reply)
            ended = time.monotonic() - asked
        assert ended < 3, f"the stream stayed open {ended:.1f} s after SIGTERM"
        notify.proc.wait(15)
        stopped = time.monotonic() - asked
        assert stopped < 5, f"the replica took {stopped:.1f} s to stop"
    finally:
        notify.stop()


def test_sigterm_to_the_gateway_ends_the_streams_it_carries_at_once(tmp_path) -> None:
    notify = AppProcess("services.notify", {"NOTIFY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}",
                                            "JWT_PUBLIC_KEY": PUBLIC_KEY, "NOTIFY_STREAM_HEARTBEAT": "30"}, tmp_path)
    notify.start()
    gateway = AppProcess("gateway", {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
                                     "JWT_PUBLIC_KEY": PUBLIC_KEY, "GATEWAY_JWT_PRIVATE_KEY": PRIVATE_KEY,
                                     "GATEWAY_NOTIFY_URL": notify.url}, tmp_path)
    gateway.start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=20) as client, \
                client.stream("GET", "/api/v1/notifications/stream", headers=auth("grower-stop-2")) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            assert next(lines).startswith("retry:")
            asked = time.monotonic()
            gateway.proc.send_signal(15)
            for _ in lines:
                pass  # ends whole: the client reconnects, with nothing to tell it apart from a stream's end
            ended = time.monotonic() - asked
        assert ended < 3, f"the stream stayed open {ended:.1f} s after SIGTERM"
        gateway.proc.wait(15)
        assert time.monotonic() - asked < 5
        assert notify.alive()
    finally:
        gateway.stop()
        notify.stop()

