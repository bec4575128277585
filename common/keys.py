"""Ed25519 keys for access tokens: the gateway signs, every service verifies with the public key.

Keys travel in settings as base64url of their raw 32 bytes (one line, easy in an env file):
``GATEWAY_JWT_PRIVATE_KEY`` (the seed) and ``JWT_PUBLIC_KEY`` (comma-separated public keys, so that
a new key can be added before the old one is retired). In development, when they are not set, every
app shares a key pair kept in ``var/keys/`` and made by whichever app starts first.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

DEV_KEY_FILE = Path("var/keys/jwt-ed25519.key")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))


def private_key_from_text(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(unb64url(text))


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(unb64url(text))


def private_key_text(key: Ed25519PrivateKey) -> str:
    return b64url(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def public_key_text(key: Ed25519PublicKey) -> str:
    return b64url(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def jwk(key: Ed25519PublicKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": public_key_text(key), "kid": key_id(key),
            "alg": "EdDSA", "use": "sig"}


def dev_private_key(path: Path = DEV_KEY_FILE) -> Ed25519PrivateKey:
    """The development key pair, made once and shared by the apps (first writer wins)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(private_key_text(Ed25519PrivateKey.generate()))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return private_key_from_text(path.read_text())


def main() -> None:
    """``python -m common.keys``: a new key pair as shell exports (``eval "$(python -m common.keys)"``)."""
    key = Ed25519PrivateKey.generate()
    print(f"export GATEWAY_JWT_PRIVATE_KEY={private_key_text(key)} JWT_PUBLIC_KEY={public_key_text(key.public_key())}")


if __name__ == "__main__":
    main()
