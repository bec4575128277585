"""``python -m services.notify dead-mail [--replay]``: the mail given up on, and a second chance for it."""

from __future__ import annotations

import argparse
import asyncio

from common.db import Database
from services.notify.mail.sender import dead_jobs, replay_dead
from services.notify.settings import NotifySettings


async def _dead_mail(settings: NotifySettings, replay: bool) -> None:
    db = Database(settings.database_url, name="notify", **settings.pool())
    try:
        for job in await dead_jobs(db, limit=1000):
            print(f"{job.id}  {job.created_at:%Y-%m-%d %H:%M}  {job.template:<24} {job.recipient}  "
                  f"tries={job.attempts}  {job.last_error or ''}")
        if replay:
            # A running notify picks them up within NOTIFY_MAIL_POLL_INTERVAL.
            print(f"{await replay_dead(db)} mail(s) queued again")
    finally:
        await db.dispose()


def add_dead_mail_command():
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.description = "List the mail given up on (dead); with --replay, queue it again."
        parser.add_argument("--replay", action="store_true", help="try the dead mail again from now")

    def run(args: argparse.Namespace, settings: NotifySettings) -> None:
        asyncio.run(_dead_mail(settings, args.replay))

    return configure, run
