"""The background worker every job runs on: woken rounds, timed rounds, full batches, the next retry's
time, failures outlived, wakes during a round not lost."""

from __future__ import annotations

import asyncio

from common.worker import Worker


async def settle(condition, timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in time")


async def test_a_round_at_start_then_one_per_wake_and_none_lost_during_a_round() -> None:
    rounds: list[float] = []
    busy = asyncio.Event()

    async def work() -> None:
        rounds.append(asyncio.get_running_loop().time())
        if len(rounds) == 2:
            busy.set()
            await asyncio.sleep(0.1)  # woken twice meanwhile: one more round after this one

    worker = Worker("test", work, interval=30)
    await worker.start()
    try:
        await settle(lambda: len(rounds) == 1)
        worker.wake()
        await busy.wait()
        worker.wake()
        worker.wake()
        await settle(lambda: len(rounds) == 3)
        await asyncio.sleep(0.2)
        assert len(rounds) == 3, "many wakes make one round; no timed round before 30 s"
    finally:
        await worker.stop()


async def test_interval_zero_means_only_woken_rounds_and_linger_delays_them() -> None:
    rounds: list[float] = []

    async def work() -> None:
        rounds.append(asyncio.get_running_loop().time())

    worker = Worker("test", work, interval=0, linger=0.15)
    await worker.start()
    try:
        await asyncio.sleep(0.1)
        assert rounds == [], "no round at start when only woken rounds run"
        woken = asyncio.get_running_loop().time()
        worker.wake()
        await settle(lambda: len(rounds) == 1)
        assert rounds[0] - woken >= 0.14, "the woken round lingers first"
    finally:
        await worker.stop()


async def test_a_full_batch_goes_again_at_once_and_next_due_shortens_the_wait() -> None:
    left = [3]
    rounds: list[float] = []

    async def work() -> bool:
        rounds.append(asyncio.get_running_loop().time())
        left[0] -= 1
        return left[0] > 0  # a full batch: there may be more

    async def next_due() -> float:
        return 0.2

    worker = Worker("test", work, interval=30, next_due=next_due)
    await worker.start()
    try:
        await settle(lambda: len(rounds) == 3)
        assert rounds[2] - rounds[0] < 0.1, "full batches follow one another at once"
        await settle(lambda: len(rounds) == 4, timeout=1.0)
        assert 0.18 <= rounds[3] - rounds[2] < 1.0, "the next round comes when the next item is due"
    finally:
        await worker.stop()


async def test_a_failed_round_is_logged_and_the_worker_goes_on(caplog) -> None:
    rounds = []

    async def work() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("database hiccup")

    worker = Worker("flaky", work, interval=0.05)
    await worker.start()
    try:
        await settle(lambda: len(rounds) >= 3)
        assert "flaky round failed; will retry" in caplog.text
    finally:
        await worker.stop()
    assert worker._task.done()
