"""Two notify replicas on one database: a live stream held by one hears at once of an event the other
handled (the wake goes through NATS core), not at its next heartbeat. Without NATS (each process's
own wake) it does not: the check bites."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.apps import make_app
from tests.events.stack import NATS_URL, drop_stream, nats_namespace
from tests.events.test_stream_wake import GROWER_ID, placed
from tests.support.auth import auth
from tests.support.servers import serve_in_thread

HEARTBEAT = 30  # seconds: a wake that came by the heartbeat would miss the test's 3 s


async def _arrives_across_replicas(db_urls, bus_url: str, namespace: str, code: str) -> bool:
    settings = {"event_bus_url": bus_url, "event_namespace": namespace, "stream_heartbeat": HEARTBEAT}
    handling, holding = make_app("notify", db_urls, **settings), make_app("notify", db_urls, **settings)
    with serve_in_thread(handling) as url_a, serve_in_thread(holding) as url_b:
        token = {"X-Service-Token": handling.state.settings.service_token.get_secret_value()}
        async with httpx.AsyncClient(base_url=url_a, timeout=10) as a, \
                httpx.AsyncClient(base_url=url_b, timeout=10) as b:
            async with b.stream("GET", "/api/v1/notifications/stream", headers=auth(GROWER_ID)) as resp:
                assert resp.status_code == 200
                lines = resp.aiter_lines()
                assert (await anext(lines)).startswith("retry:")  # replica b holds the stream now
                answer = await a.post("/internal/events", headers={**token, "Content-Type": "application/json"},
                                      content=placed(code).model_dump_json())
                assert answer.status_code == 200, answer.text

                async def data() -> str:
                    async for line in lines:
                        if line.startswith("data: "):
                            return line
                    return ""

                with contextlib.suppress(TimeoutError):
                    return code in await asyncio.wait_for(data(), 3)
                return False


async def test_a_stream_on_one_replica_hears_of_an_event_handled_by_another_at_once(db_urls) -> None:
    namespace = await nats_namespace()
    try:
        assert await _arrives_across_replicas(db_urls, NATS_URL, namespace, "CV-REPLICA-1")
    finally:
        await drop_stream(namespace)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_without_nats_the_other_replica_waits_for_its_heartbeat(db_urls) -> None:
    assert not await _arrives_across_replicas(db_urls, "", "cv", "CV-REPLICA-2")
