"""The VAPID key pair (RFC 8292) that signs every push: from NOTIFY_VAPID_PRIVATE_KEY, or in development
one made once and kept in ``var/keys/`` (so the devices' subscriptions outlive a restart).

``python -m services.notify.push.vapid`` prints a new private key for the setting."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid

from common.keys import b64url
from services.notify.settings import NotifySettings

log = logging.getLogger("notify.push")

DEV_KEY_FILE = Path("var/keys/vapid-p256.key")


def new_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def _dev_key(path: Path = DEV_KEY_FILE) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(new_private_key())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # first writer wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def load(settings: NotifySettings) -> Vapid | None:
    """The signing key, or None when push is off (not configured outside development)."""
    if settings.vapid_private_key is not None and settings.vapid_private_key.get_secret_value().strip():
        text = settings.vapid_private_key.get_secret_value().strip()
    elif settings.environment == "development":
        text = _dev_key()
    else:
        log.warning("%s is not set: Web Push is off", settings.env_name("vapid_private_key"))
        return None
    try:
        return Vapid.from_raw(text.encode())
    except Exception as exc:  # noqa: BLE001 - a malformed key stops the start with the setting's name
        raise ValueError(f"{settings.env_name('vapid_private_key')} is not a base64url P-256 private key: "
                         f"{exc}") from None


def public_key(vapid: Vapid) -> str:
    """The application server key a page passes to ``pushManager.subscribe`` (65 bytes, base64url)."""
    return b64url(vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


if __name__ == "__main__":
    print(f"NOTIFY_VAPID_PRIVATE_KEY={new_private_key()}")
