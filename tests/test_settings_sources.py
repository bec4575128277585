"""Settings mean what the docs say: one name per setting, secrets from files, rotated keys.

Each rule runs on every app's settings class; the failure it guards against is spelled out beside it
(``ORDERS_SERVICE_TOKEN`` read beside ``SERVICE_TOKEN`` gave each app its own service token).
"""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AliasChoices, SecretStr, ValidationError

from common.auth import TokenVerifier
from common.crypto import FieldCipher
from common.keys import private_key_text, public_key_text
from gateway.settings import GatewaySettings
from services.catalog.settings import CatalogSettings
from services.notify.settings import NotifySettings
from services.orders.settings import OrdersSettings
from tests.apps import make_app
from tests.conftest import asgi_client

ALL = [GatewaySettings, CatalogSettings, OrdersSettings, NotifySettings]


def _aliased(cls) -> list[tuple[str, str]]:
    return [(name, str(f.validation_alias.choices[0])) for name, f in cls.model_fields.items()
            if isinstance(f.validation_alias, AliasChoices)]


def _sample(cls, field: str) -> str:
    """A value the field accepts that differs from its default."""
    return {"environment": "test", "event_namespace": "other", "metrics_token": "m" * 40,
            "service_token": "s" * 40}.get(field, "nats://elsewhere:4222" if "url" in field else "x" * 40)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_a_shared_setting_has_one_name(cls, monkeypatch) -> None:
    """``<PREFIX><FIELD>`` of an unprefixed setting is not read, alone or beside the real name."""
    prefix = cls.model_config["env_prefix"]
    aliased = _aliased(cls)
    assert ("service_token", "SERVICE_TOKEN") in aliased
    for field, _ in aliased:
        monkeypatch.setenv(f"{prefix}{field}".upper(), _sample(cls, field))
    settings = cls()
    for field, _ in aliased:
        assert getattr(settings, field) == cls.model_fields[field].get_default(call_default_factory=True), \
            f"{prefix}{field.upper()} was read: {field} has two names"
    # The real name is read, and code can still build settings by field name.
    monkeypatch.setenv("SERVICE_TOKEN", "t" * 40)
    assert cls().service_token.get_secret_value() == "t" * 40
    assert cls(service_token="u" * 40).service_token.get_secret_value() == "u" * 40


def test_every_app_gets_the_one_service_token(monkeypatch) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", "shared-" + "s" * 40)
    for cls in ALL:
        monkeypatch.setenv(f"{cls.model_config['env_prefix']}SERVICE_TOKEN", f"{cls.__name__}-" + "x" * 40)
    assert {cls().service_token.get_secret_value() for cls in ALL} == {"shared-" + "s" * 40}


def test_secrets_come_from_files_named_as_the_variables(tmp_path, monkeypatch) -> None:
    (tmp_path / "SERVICE_TOKEN").write_text("from-a-file-" + "f" * 30 + "\n")  # trailing newline, as echo writes
    (tmp_path / "ORDERS_DATA_KEY").write_text("orders-key-from-a-file-" + "k" * 20)
    (tmp_path / "METRICS_TOKEN").write_text("metrics-from-a-file-" + "m" * 20)
    (tmp_path / "ORDERS_SERVICE_TOKEN").write_text("never-read-" + "n" * 30)  # one name: not this one
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    orders = OrdersSettings()
    assert orders.service_token.get_secret_value() == "from-a-file-" + "f" * 30
    assert orders.data_key.get_secret_value() == "orders-key-from-a-file-" + "k" * 20
    assert GatewaySettings().metrics_token.get_secret_value() == "metrics-from-a-file-" + "m" * 20
    assert CatalogSettings().service_token.get_secret_value() == "from-a-file-" + "f" * 30
    # The environment wins over a file.
    monkeypatch.setenv("SERVICE_TOKEN", "from-the-environment-" + "e" * 20)
    assert OrdersSettings().service_token.get_secret_value() == "from-the-environment-" + "e" * 20


def test_a_missing_secrets_folder_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "not-there"))
    with pytest.raises(ValueError, match="SECRETS_DIR"):
        OrdersSettings()


def test_production_settings_from_files_alone(tmp_path, monkeypatch) -> None:
    """What Kubernetes does: ENVIRONMENT in the environment, every secret a file in SECRETS_DIR."""
    key = Ed25519PrivateKey.generate()
    files = {"SERVICE_TOKEN": "s" * 40, "JWT_PUBLIC_KEY": public_key_text(key.public_key()),
             "GATEWAY_JWT_PRIVATE_KEY": private_key_text(key), "METRICS_TOKEN": "m" * 40,
             "CATALOG_DATA_KEY": "c" * 40, "ORDERS_DATA_KEY": "o" * 40, "NOTIFY_DATA_KEY": "n" * 40}
    for name, value in files.items():
        (tmp_path / name).write_text(value)
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError):
        OrdersSettings()  # no folder yet: the development defaults are refused
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    for cls in ALL:
        assert cls().environment == "production"
    (tmp_path / "ORDERS_DATA_KEY").write_text("short")
    with pytest.raises(ValidationError, match="ORDERS_DATA_KEY"):
        OrdersSettings()


@pytest.mark.parametrize("cls", [CatalogSettings, OrdersSettings, NotifySettings], ids=lambda c: c.__name__)
def test_every_key_of_a_rotated_list_must_be_real(cls, monkeypatch) -> None:
    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_PUBLIC_KEY", public_key_text(key.public_key()))
    monkeypatch.setenv("SERVICE_TOKEN", "s" * 40)
    name = cls.env_name("data_key")
    monkeypatch.setenv(name, "n" * 40 + ",short")
    with pytest.raises(ValidationError, match=name):
        cls()
    monkeypatch.setenv(name, "n" * 40 + "," + "o" * 40)
    assert cls().data_key.get_secret_value().startswith("n" * 40)


def test_a_data_key_is_rotated_without_losing_what_was_stored() -> None:
    old = FieldCipher("old-key-" + "o" * 40)
    stored = old.encrypt("0123456789")
    rotated = FieldCipher("new-key-" + "n" * 40 + ", old-key-" + "o" * 40)
    assert rotated.decrypt(stored) == "0123456789"  # stored under the old key: still read
    fresh = rotated.encrypt("9876543210")
    assert FieldCipher("new-key-" + "n" * 40).decrypt(fresh) == "9876543210"  # the first key encrypts
    with pytest.raises(ValueError):
        old.decrypt(fresh)
    with pytest.raises(ValueError):
        FieldCipher("new-key-" + "n" * 40).decrypt(stored)  # dropping the old key too soon loses it


async def test_the_signing_key_is_rotated_without_losing_what_was_signed(tmp_path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    both_public = f"{public_key_text(new.public_key())},{public_key_text(old.public_key())}"
    db = {"gateway": f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"}
    before = make_app("gateway", db, jwt_private_key=SecretStr(private_key_text(old)),
                      jwt_public_key=public_key_text(old.public_key()))
    old_token = before.state.signer.access_token(sub="1", role="grower")
    after = make_app("gateway", db, jwt_private_key=SecretStr(f"{private_key_text(new)},{private_key_text(old)}"),
                     jwt_public_key=both_public)
    new_token = after.state.signer.access_token(sub="2", role="grower")
    assert jwt.get_unverified_header(new_token)["kid"] == after.state.signer.kid
    verifier = TokenVerifier.from_setting(both_public)
    assert verifier.verify(old_token).sub == "1" and verifier.verify(new_token).sub == "2"
    assert TokenVerifier.from_setting(public_key_text(new.public_key())).verify(new_token).sub == "2"
    async with asgi_client(after) as client:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {old_token}"})
        stranger = Ed25519PrivateKey.generate()
        forged = jwt.encode(jwt.decode(old_token, options={"verify_signature": False}), stranger,
                            algorithm="EdDSA", headers={"kid": after.state.signer.kid})
        refused = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert len(keys) == 2 and keys[0]["kid"] == after.state.signer.kid
    assert refused.status_code == 401 and "not valid" in refused.json()["detail"]
    # Signed before the rotation: the token is accepted (account 1 simply is not there).
    assert me.json()["detail"] == "This account no longer exists", me.text
