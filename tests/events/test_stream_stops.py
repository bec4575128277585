"""A notify replica told to stop (SIGTERM) ends its open live streams at once, so that their clients
reconnect (with Last-Event-ID) to another replica, rather than holding the shutdown for its grace period
(10 s) and being cut off at its end."""

from __future__ import annotations

import time

import httpx

from tests.apps import PUBLIC_KEY
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
