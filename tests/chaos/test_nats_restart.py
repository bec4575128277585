"""Chaos: the NATS server restarts in the middle of a stream of orders; every event still arrives,
once. Needs the machine's own nats-server (root restarts it, as CI does)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

from tests.events.stack import stack
from tests.support.databases import require

NATS_BIN = "/usr/sbin/nats-server"
NATS_START = [
    "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", NATS_BIN, "--",
    "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log",
]


def _restartable() -> bool:
    return os.geteuid() == 0 and os.path.exists(NATS_BIN) and shutil.which("start-stop-daemon") is not None


async def _run(*argv: str) -> int:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return await proc.wait()


async def _stop_nats() -> None:
    assert await _run("start-stop-daemon", "--stop", "--oknodo", "--retry", "5", "--exec", NATS_BIN) == 0


async def _start_nats() -> None:
    assert await _run(*NATS_START) == 0
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", 4222)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("nats-server did not come back")


async def test_every_event_arrives_across_a_nats_restart(db_urls) -> None:
    require(_restartable(), f"restarting NATS needs root and {NATS_BIN}")
    async with stack(db_urls, "nats") as s:
        codes = [(await s.place(quantity=2)).json()["code"] for _ in range(5)]
        await s.wait_inbox(5)
        await _stop_nats()
        try:
            for _ in range(10):  # placed while the bus is down: kept in the outbox
                placed = await s.place(quantity=2)
                assert placed.status_code == 201
                codes.append(placed.json()["code"])
            await asyncio.sleep(1)
        finally:
            await _start_nats()
        codes += [(await s.place(quantity=2)).json()["code"] for _ in range(5)]
        inbox = await s.wait_inbox(len(codes), timeout=60)
        seen = [i["data"]["code"] for i in inbox["items"] if i["type"] == "order.placed"]
        assert sorted(seen) == sorted(codes), f"{len(seen)} of {len(codes)} arrived"
