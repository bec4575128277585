"""``python -m services.notify dead-letters [--replay]``: the events NATS gave up on, listed or replayed."""

from __future__ import annotations

import argparse
import asyncio

from services.notify.events.nats_consumer import dead_letters
from services.notify.settings import NotifySettings


def add_dead_letters_command():
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--replay", action="store_true", help="publish them again and remove them")

    def run(args: argparse.Namespace, settings: NotifySettings) -> None:
        if not settings.uses_nats:
            raise SystemExit("dead letters live in NATS: set EVENT_BUS_URL=nats://… (with HTTP push, the "
                             "orders outbox keeps undelivered events: python -m services.orders outbox)")
        found = asyncio.run(dead_letters(settings.event_bus_url, settings.event_names(), args.replay))
        for item in found:
            print(f"{item['id']}  {item['type']}  {item['error'] or ''}")
        print(f"{len(found)} dead letter(s){' replayed' if args.replay else ''}")

    return configure, run
