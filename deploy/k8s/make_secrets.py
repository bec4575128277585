"""The Secrets of a Kubernetes install of Chợ Vườn, made with fresh random values.

    .venv/bin/python deploy/k8s/make_secrets.py --smtp-url 'smtp://user:password@smtp.example:587?starttls=1' \
        | kubectl create -f -

Prints a v1 List (JSON) of:

- ``cho-vuon-shared``: SERVICE_TOKEN and JWT_PUBLIC_KEY, mounted into every app;
- ``cho-vuon-<app>``: that app's own secret settings, among them its database URL (its own role on
  its own database in the CloudNativePG cluster);
- ``cho-vuon-db-<app>``: the basic-auth Secrets from which CloudNativePG sets those roles' passwords;
- ``cho-vuon-redis``: the Redis password, also inside GATEWAY_REDIS_URL.

Every key of the app Secrets is named exactly as the setting it holds: the apps read them as files
under /run/secrets (SECRETS_DIR). Use ``kubectl create``, never ``apply``: run twice, this makes new
data keys, and whatever was encrypted with the old ones could no longer be read. Back the printed
values up (the data keys above all) before you pipe them into the cluster.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

APPS = ("gateway", "catalog", "orders", "notify")
LABELS = {"app.kubernetes.io/part-of": "cho-vuon", "app.kubernetes.io/component": "secret"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def vapid_key() -> str:
    """A Web Push (VAPID) private key: base64url of a P-256 key's 32 raw bytes."""
    return _b64url(ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big"))


def _secret(name: str, namespace: str, data: dict[str, str], *, kind: str = "Opaque",
            labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": {**LABELS, **(labels or {})}},
            "stringData": data}


def make(namespace: str = "cho-vuon", cluster: str = "cho-vuon-db", smtp_url: str = "") -> dict:
    key = Ed25519PrivateKey.generate()
    private = _b64url(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    public = _b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    passwords = {app: secrets.token_hex(24) for app in APPS}
    redis_password = secrets.token_hex(24)

    def database_url(app: str) -> str:
        return f"postgresql://{app}:{passwords[app]}@{cluster}-rw:5432/{app}"

    own = {
        "gateway": {"GATEWAY_DATABASE_URL": database_url("gateway"),
                    "GATEWAY_JWT_PRIVATE_KEY": private,
                    "GATEWAY_REDIS_URL": f"redis://:{redis_password}@redis:6379/0"},
        "catalog": {"CATALOG_DATABASE_URL": database_url("catalog"),
                    "CATALOG_DATA_KEY": secrets.token_hex(32)},
        "orders": {"ORDERS_DATABASE_URL": database_url("orders"),
                   "ORDERS_DATA_KEY": secrets.token_hex(32)},
        "notify": {"NOTIFY_DATABASE_URL": database_url("notify"),
                   "NOTIFY_DATA_KEY": secrets.token_hex(32),
                   # Signs Web Push: keep it (a new one unsubscribes every device).
                   "NOTIFY_VAPID_PRIVATE_KEY": vapid_key(),
                   # Empty: mail is written to the log, not sent.
                   "SMTP_URL": smtp_url},
    }
    items = [_secret("cho-vuon-shared", namespace,
                     {"SERVICE_TOKEN": secrets.token_hex(32), "JWT_PUBLIC_KEY": public})]
    items += [_secret(f"cho-vuon-{app}", namespace, own[app]) for app in APPS]
    # cnpg.io/reload: the operator sets the new password when the Secret changes.
    items += [_secret(f"{cluster}-{app}", namespace, {"username": app, "password": passwords[app]},
                      kind="kubernetes.io/basic-auth", labels={"cnpg.io/reload": "true"})
              for app in APPS]
    items.append(_secret("cho-vuon-redis", namespace, {"REDIS_PASSWORD": redis_password}))
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", default="cho-vuon")
    parser.add_argument("--cluster", default="cho-vuon-db", help="the CloudNativePG Cluster's name")
    parser.add_argument("--smtp-url", default="", help="where notify sends mail (empty: mail is logged)")
    args = parser.parse_args(argv)
    if not args.smtp_url:
        print("make_secrets.py: no --smtp-url, notify will log mail instead of sending it", file=sys.stderr)
    json.dump(make(args.namespace, args.cluster, args.smtp_url), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
