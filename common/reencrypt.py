"""``python -m <app> reencrypt``: every value an app stored encrypted, moved to the first key of its
``<PREFIX>DATA_KEY`` list, so that the keys after it can be dropped (docs/operations.md, Rotating keys).

Each app names its encrypted columns: ``(table, column, None)`` for a column holding the token, or
``(table, column, key)`` for a JSON column holding it under ``key``. It runs in one transaction; a
value that no listed key decrypts stops it with nothing changed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from sqlalchemy import text

from common.crypto import FieldCipher
from common.db import Database
from common.settings import AppSettings

EncryptedColumn = tuple[str, str, str | None]


async def reencrypt(url: str, cipher: FieldCipher, columns: Sequence[EncryptedColumn]) -> int:
    db = Database(url)
    changed = 0
    try:
        async with db.engine.begin() as conn:
            for table, column, key in columns:
                rows = (await conn.execute(text(
                    f'SELECT id, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'))).all()
                for row_id, value in rows:
                    if key is None:
                        new = cipher.reencrypt(value)
                    else:
                        data = value if isinstance(value, dict) else json.loads(value)
                        token = data.get(key) if isinstance(data, dict) else None
                        fresh = cipher.reencrypt(token) if token else None
                        new = json.dumps({**data, key: fresh}, ensure_ascii=False) if fresh else None
                    if new is not None:
                        await conn.execute(text(f'UPDATE "{table}" SET "{column}" = :v WHERE id = :id'),
                                           {"v": new, "id": row_id})
                        changed += 1
    finally:
        await db.dispose()
    return changed


def reencrypt_command(columns: Sequence[EncryptedColumn]):
    """An ``extra`` command for :func:`common.cli.run_cli`."""
    def configure(_: argparse.ArgumentParser) -> None:
        pass

    def run(_: argparse.Namespace, settings: AppSettings) -> None:
        cipher = FieldCipher(settings.data_key.get_secret_value())  # type: ignore[attr-defined]
        try:
            count = asyncio.run(reencrypt(settings.database_url, cipher, columns))
        except ValueError as exc:
            raise SystemExit(f"{settings.service_name}: {exc}; nothing was changed") from None
        print(f"{settings.service_name}: {count} values re-encrypted under the first data key")

    return configure, run
