"""The Secrets of a Kubernetes install of Chợ Vườn, made with fresh random values.

    .venv/bin/python deploy/k8s/make_secrets.py --smtp-url 'smtp://user:password@smtp.example:587?starttls=1' \
        | kubectl create -f -

Prints a v1 List (JSON) of:

- ``cho-vuon-shared``: SERVICE_TOKEN and JWT_PUBLIC_KEY, mounted into every app;
- ``cho-vuon-<app>``: that app's own secret settings, among them its database URL (its own role on
  its own database in the CloudNativePG cluster);
- ``cho-vuon-db-<app>``: the basic-auth Secrets from which CloudNativePG sets those roles' passwords;
- ``cho-vuon-redis``: the Redis password, also inside GATEWAY_REDIS_URL;
- ``cho-vuon-metrics``: METRICS_TOKEN, the one credential the gateway's /metrics takes (as
  ``Authorization: Bearer``); copy it into Prometheus's namespace (docs/operations.md).

The keys that rotate (the data keys, GATEWAY_JWT_PRIVATE_KEY with JWT_PUBLIC_KEY) are lists,
comma-separated, newest first. ``--rotate NAME`` reads the Secrets as ``kubectl get -o json`` prints
them and puts a fresh key first, the old ones kept after it; ``--retire NAME`` keeps the first only
(docs/operations.md, "Kubernetes", rotating keys):

    kubectl -n cho-vuon get secret cho-vuon-orders -o json \
        | .venv/bin/python deploy/k8s/make_secrets.py --rotate ORDERS_DATA_KEY | kubectl replace -f -
    kubectl -n cho-vuon get secret cho-vuon-shared cho-vuon-gateway -o json \
        | .venv/bin/python deploy/k8s/make_secrets.py --rotate GATEWAY_JWT_PRIVATE_KEY | kubectl replace -f -

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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.keys import private_key_text, public_key_text
from services.notify.push.vapid import new_private_key as vapid_key

APPS = ("gateway", "catalog", "orders", "notify")
LABELS = {"app.kubernetes.io/part-of": "cho-vuon", "app.kubernetes.io/component": "secret"}


def _secret(name: str, namespace: str, data: dict[str, str], *, kind: str = "Opaque",
            labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": {**LABELS, **(labels or {})}},
            "stringData": data}


def _signing_pair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    return private_key_text(key), public_key_text(key.public_key())


def make(namespace: str = "cho-vuon", cluster: str = "cho-vuon-db", smtp_url: str = "") -> dict:
    private, public = _signing_pair()
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
    # Its own Secret, not the gateway's: Prometheus gets this one value, nothing that opens more.
    items.append(_secret("cho-vuon-metrics", namespace, {"METRICS_TOKEN": secrets.token_hex(32)}))
    return {"apiVersion": "v1", "kind": "List", "items": items}


ROTATED = ("CATALOG_DATA_KEY", "ORDERS_DATA_KEY", "NOTIFY_DATA_KEY", "GATEWAY_JWT_PRIVATE_KEY")


def _values(secret: dict, key: str) -> list[str]:
    if key in (secret.get("stringData") or {}):
        text = secret["stringData"][key]
    else:
        text = base64.b64decode(secret["data"][key]).decode()
    return [part.strip() for part in text.split(",") if part.strip()]


def _set(secret: dict, key: str, values: list[str]) -> None:
    (secret.get("stringData") or {}).pop(key, None)
    secret.setdefault("data", {})[key] = base64.b64encode(",".join(values).encode()).decode()


def rotate(current: dict, name: str, *, retire: bool = False) -> dict:
    """The Secrets of ``current`` (a Secret or a List, as kubectl prints them) with a fresh key first
    in ``name`` (the old ones after it), or with only the first one left (``retire``). The signing
    key moves with its public half, JWT_PUBLIC_KEY."""
    if name not in ROTATED:
        raise SystemExit(f"make_secrets.py: {name} does not rotate (one of {', '.join(ROTATED)})")
    items = current["items"] if current.get("kind") == "List" else [current]
    names = [name] + (["JWT_PUBLIC_KEY"] if name == "GATEWAY_JWT_PRIVATE_KEY" else [])
    holders = {}
    for key in names:
        holder = next((s for s in items if key in (s.get("data") or {}) or key in (s.get("stringData") or {})), None)
        if holder is None:
            raise SystemExit(f"make_secrets.py: no Secret given holds {key}")
        holders[key] = holder
    if retire:
        for key, holder in holders.items():
            _set(holder, key, _values(holder, key)[:1])
        return current
    if name == "GATEWAY_JWT_PRIVATE_KEY":
        private, public = _signing_pair()
        fresh = {name: private, "JWT_PUBLIC_KEY": public}
    else:
        fresh = {name: secrets.token_hex(32)}
    for key, holder in holders.items():
        _set(holder, key, [fresh[key], *_values(holder, key)])
    return current


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", default="cho-vuon")
    parser.add_argument("--cluster", default="cho-vuon-db", help="the CloudNativePG Cluster's name")
    parser.add_argument("--smtp-url", default="", help="where notify sends mail (empty: mail is logged)")
    parser.add_argument("--rotate", metavar="NAME", help="put a fresh key first in the Secrets read on stdin")
    parser.add_argument("--retire", metavar="NAME", help="keep only the first key in the Secrets read on stdin")
    args = parser.parse_args(argv)
    if args.rotate or args.retire:
        current = json.load(sys.stdin)
        json.dump(rotate(current, args.rotate or args.retire, retire=bool(args.retire)), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if not args.smtp_url:
        print("make_secrets.py: no --smtp-url, notify will log mail instead of sending it", file=sys.stderr)
    json.dump(make(args.namespace, args.cluster, args.smtp_url), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
