"""Static checks of the production shape (docker-compose.yml, Dockerfile, docs/operations.md).

No Docker engine is needed: the compose file is read with PyYAML and compared with what the code
actually reads. The names of accepted environment variables are derived from the settings classes
(``model_fields`` and ``model_config['env_prefix']``), never listed here, so a renamed setting or a
typo in the compose file fails a test instead of being silently ignored by pydantic-settings.

Each rule is a ``check_*`` function returning a list of problems. The tests run every check on the
real file, and feed each check a deliberately broken copy to prove it notices.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic_settings import BaseSettings

from common.settings import SharedSettings
from deploy import compose_secrets
from gateway.settings import GatewaySettings
from services.catalog.settings import CatalogSettings
from services.notify.settings import NotifySettings
from services.orders.settings import OrdersSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

# The module run by `python -m <module> serve` → the settings class that app reads.
APP_SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "services.catalog": CatalogSettings,
    "services.orders": OrdersSettings,
    "services.notify": NotifySettings,
}
# Read by every app before its own settings (common.cli / common.service).
SHARED_SETTINGS: tuple[type[BaseSettings], ...] = (SharedSettings,)

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)")
INITDB_DIR = "/docker-entrypoint-initdb.d"
SECRETS_MOUNT = "/run/secrets"  # where compose mounts `secrets:` (and the apps' SECRETS_DIR)
SECRETS_FOLDER = "./secrets/"  # where deploy/compose_secrets.py writes them


# --- what the code reads ---------------------------------------------------------------------------


def _field_env_names(cls: type[BaseSettings], name: str) -> list[str]:
    """The environment variable(s) pydantic-settings reads a field from."""
    field = cls.model_fields[name]
    alias = field.validation_alias or field.alias
    if alias is None:
        return [(cls.model_config.get("env_prefix", "") + name).upper()]
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    names = []
    for choice in choices:
        if isinstance(choice, AliasPath):
            choice = choice.path[0]
        names.append(str(choice).upper())
    return names


def env_names(cls: type[BaseSettings]) -> set[str]:
    return {env for name in cls.model_fields for env in _field_env_names(cls, name)}


def env_name(cls: type[BaseSettings], field: str) -> str:
    return _field_env_names(cls, field)[0]


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or any(_is_secret(a) for a in typing.get_args(annotation))


def secret_env_names(cls: type[BaseSettings]) -> set[str]:
    return {env for name, f in cls.model_fields.items() if _is_secret(f.annotation)
            for env in _field_env_names(cls, name)}


def accepted_env(module: str) -> set[str]:
    """Every variable the app run as ``python -m <module>`` reads."""
    names = env_names(APP_SETTINGS[module])
    for shared in SHARED_SETTINGS:
        names |= env_names(shared)
    return names


def readers(name: str) -> list[str]:
    """The apps (modules) that read ``name``."""
    return sorted(m for m in APP_SETTINGS if name.upper() in accepted_env(m))


def service_name(module: str) -> str:
    return APP_SETTINGS[module].service_name


def default(cls: type[BaseSettings], field: str) -> object:
    return cls.model_fields[field].get_default(call_default_factory=True)


@functools.cache
def subcommands(module: str) -> frozenset[str]:
    """The sub-commands ``python -m <module> --help`` offers (argparse prints ``{a,b,c}``)."""
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        return frozenset()
    found = re.search(r"\{([\w,-]+)\}", proc.stdout)
    return frozenset(found.group(1).split(",")) if found else frozenset()


# --- reading the compose file ---------------------------------------------------------------------

# $$ is a literal dollar; ${NAME}, ${NAME:?msg}, ${NAME-default}, … and $NAME are interpolations.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


@dataclass(frozen=True)
class Interpolation:
    name: str
    op: str  # "" for ${NAME} and $NAME
    arg: str
    text: str


def interpolations(value: str) -> list[Interpolation]:
    found = []
    for m in _INTERPOLATION.finditer(value):
        if m.group(0) == "$$":
            continue
        found.append(Interpolation(m.group("braced") or m.group("bare"), m.group("op") or "",
                                   m.group("arg") or "", m.group(0)))
    return found


PLACEHOLDER = "interpolated" + "x" * 36  # URL-safe, and long enough to pass as a real secret


def substituted(value: str) -> str:
    """``value`` as compose would pass it when every variable is set: a default (``${A:-x}``) is
    kept, anything else becomes :data:`PLACEHOLDER` (URL-safe, so URLs still parse)."""
    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return m.group("arg") if m.group("op") in (":-", "-") else PLACEHOLDER
    return _INTERPOLATION.sub(one, value)


def _strings(node: object, where: str):
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{where}[{i}]")


@functools.cache
def made_secrets() -> dict[str, str]:
    """What deploy/compose_secrets.py writes into ./secrets on a fresh install: name → value."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        compose_secrets.make(Path(folder))
        return {f.name: f.read_text(encoding="utf-8").strip() for f in Path(folder).iterdir()}


@dataclass
class Compose:
    data: dict
    base_dir: Path

    @property
    def services(self) -> dict[str, dict]:
        return self.data.get("services") or {}

    def command(self, svc: str) -> list[str]:
        cmd = self.services[svc].get("command") or []
        return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]

    def is_app(self, svc: str) -> bool:
        """Built here, or running the image built here, or running python."""
        spec, cmd = self.services[svc], self.command(svc)
        built = {s.get("image") for s in self.services.values() if "build" in s} - {None}
        return "build" in spec or spec.get("image") in built or (bool(cmd) and cmd[0].startswith("python"))

    def apps(self) -> dict[str, str]:
        """Compose service → module, for the services that run one of our apps."""
        found = {}
        for svc in self.services:
            if self.is_app(svc):
                cmd = self.command(svc)
                found[svc] = cmd[2] if len(cmd) >= 3 and cmd[1] == "-m" else ""
        return found

    def app_service(self, module: str) -> str | None:
        return next((svc for svc, mod in self.apps().items() if mod == module), None)

    def env(self, svc: str) -> dict[str, str]:
        env = self.services[svc].get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {str(k): "" if v is None else str(v) for k, v in env.items()}

    def secrets(self, svc: str) -> list[str]:
        """The secrets mounted into a service, by the name of the file under /run/secrets."""
        found = []
        for item in self.services[svc].get("secrets") or []:
            if isinstance(item, dict):
                target = str(item.get("target") or item.get("source"))
                found.append(target.removeprefix(SECRETS_MOUNT + "/"))
            else:
                found.append(str(item))
        return found

    def given(self, svc: str) -> dict[str, str]:
        """What the app in ``svc`` is told: its environment and, through SECRETS_DIR, its secret files
        as deploy/compose_secrets.py makes them (the environment wins, as in the apps' settings)."""
        made = made_secrets()
        return {**{name: made.get(name, "") for name in self.secrets(svc)}, **self.env(svc)}

    def image_of(self, prefix: str) -> str | None:
        return next((svc for svc, s in self.services.items()
                     if str(s.get("image", "")).split("/")[-1].startswith(prefix)), None)

    def port_of(self, module: str) -> int:
        cls = APP_SETTINGS[module]
        svc = self.app_service(module)
        configured = self.env(svc).get(env_name(cls, "port")) if svc else None
        return int(configured) if configured else int(default(cls, "port"))


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    return Compose(yaml.safe_load(path.read_text(encoding="utf-8")), path.parent)


# --- the checks -----------------------------------------------------------------------------------


def check_app_commands(c: Compose) -> list[str]:
    problems = []
    apps = c.apps()
    for svc, module in apps.items():
        cmd = c.command(svc)
        if len(cmd) != 4 or cmd[0] not in ("python", "python3") or cmd[1] != "-m" or cmd[3] != "serve":
            problems.append(f"{svc}: command {cmd!r} is not `python -m <module> serve`")
            continue
        if module not in APP_SETTINGS:
            problems.append(f"{svc}: `{module}` is not one of the apps {sorted(APP_SETTINGS)}")
            continue
        try:
            spec = importlib.util.find_spec(f"{module}.__main__")
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            problems.append(f"{svc}: `{module}` has no __main__ module, `python -m {module}` cannot run")
        elif "serve" not in subcommands(module):
            problems.append(f"{svc}: `python -m {module} --help` offers no `serve` sub-command "
                            f"(offers {sorted(subcommands(module))})")
    modules = sorted(apps.values())
    for module in APP_SETTINGS:
        if modules.count(module) != 1:
            problems.append(f"`{module}` runs in {modules.count(module)} services, expected exactly one")
    return problems


def check_env_names(c: Compose) -> list[str]:
    """Every variable set on an app is a setting, read by that very app (or by SharedSettings)."""
    problems = []
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        accepted = accepted_env(module)
        for name in c.given(svc):
            if name.upper() in accepted:
                continue
            others = readers(name)
            if others:
                problems.append(f"{svc}: {name} is read by {', '.join(others)}, not by {module}; "
                                f"{module} ignores it")
            else:
                problems.append(f"{svc}: {name} is not a setting of any app (typo or renamed "
                                f"setting?); {module} reads {sorted(accepted)}")
    return problems


def check_required_env(c: Compose) -> list[str]:
    """What an app must be told in a container: production mode, bind address, its database,
    JSON logs, its secrets and where the other apps are (their defaults point at 127.0.0.1)."""
    problems = []
    app_names = {service_name(m) for m in APP_SETTINGS}
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        cls, env = APP_SETTINGS[module], c.env(svc)
        expected = {env_name(cls, "environment"): "production", env_name(cls, "host"): "0.0.0.0",
                    env_name(SharedSettings, "log_format"): "json"}
        for name, value in expected.items():
            if env.get(name) != value:
                problems.append(f"{svc}: {name} must be {value!r}, is {env.get(name)!r}")
        needed = {env_name(cls, "database_url")} | secret_env_names(cls)
        needed |= {env_name(cls, f) for f in cls.model_fields
                   if f.endswith("_url") and f.removesuffix("_url") in app_names}
        for name in sorted(needed - set(c.given(svc))):
            problems.append(f"{svc}: {name} is not set")
    return problems


def check_one_image(c: Compose) -> list[str]:
    problems = []
    apps = c.apps()
    shapes = set()
    for svc in apps:
        build = c.services[svc].get("build")
        if isinstance(build, str):
            build = {"context": build}
        build_key = None
        if build:
            context = (c.base_dir / build.get("context", ".")).resolve()
            dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
            build_key = str(dockerfile)
            if not dockerfile.is_file():
                problems.append(f"{svc}: builds from {dockerfile}, which does not exist")
        shapes.add((build_key, c.services[svc].get("image")))
    if len(shapes) > 1:
        problems.append("the apps are not built from one Dockerfile into one image: "
                        f"{sorted(map(str, shapes))}")
    if apps and not any(key for key, _ in shapes):
        problems.append("no app has a build section; the image could not be built by compose")
    return problems


def check_ports(c: Compose) -> list[str]:
    """Only the edge (Caddy) publishes ports, 80 and 443; the gateway is reached through it."""
    problems = []
    edge = c.image_of("caddy")
    for svc, spec in c.services.items():
        ports = spec.get("ports") or []
        if svc != edge and ports:
            problems.append(f"{svc} publishes {ports}; only the edge ({edge}) may publish a port")
    if edge is None:
        return problems + ["no edge: no caddy service"]
    published = {str(p.get("target") if isinstance(p, dict) else p).split(":")[-1].split("/")[0]
                 for p in c.services[edge].get("ports") or []}
    for port in ("80", "443"):
        if port not in published:
            problems.append(f"{edge}: port {port} is not published (ports: {sorted(published)})")
    return problems


CADDYFILE_TARGET = "/etc/caddy/Caddyfile"
_UPSTREAM = re.compile(r"reverse_proxy\s+\{\$UPSTREAM:([\w.-]+):(\d+)\}")


def _mounts(c: Compose, svc: str) -> dict[str, str]:
    """target → source of a service's volumes."""
    found = {}
    for volume in c.services[svc].get("volumes") or []:
        if isinstance(volume, dict):
            found[str(volume.get("target"))] = str(volume.get("source"))
        else:
            source, _, rest = str(volume).partition(":")
            found[rest.split(":")[0]] = source
    return found


def check_edge(c: Compose) -> list[str]:
    """Caddy runs deploy/caddy/Caddyfile, proxies to the gateway's port, keeps its certificates on a
    volume, is told DOMAIN; the gateway trusts Caddy's fixed address and nothing else; the apps'
    public address is https://$DOMAIN."""
    edge, gateway = c.image_of("caddy"), c.app_service("gateway")
    if edge is None or gateway is None:
        return ["no caddy service or no gateway"]
    problems = []
    mounts = _mounts(c, edge)
    source = mounts.get(CADDYFILE_TARGET)
    caddyfile = (c.base_dir / source).resolve() if source and source.startswith(".") else None
    if caddyfile is None or not caddyfile.is_file():
        problems.append(f"{edge}: no Caddyfile of this repository mounted at {CADDYFILE_TARGET} ({source})")
    else:
        upstream = _UPSTREAM.search(caddyfile.read_text(encoding="utf-8"))
        want = (gateway, str(c.port_of("gateway")))
        if upstream is None or upstream.groups() != want:
            problems.append(f"{edge}: the Caddyfile does not proxy to {want[0]}:{want[1]} "
                            f"({upstream.group(0) if upstream else 'no reverse_proxy {$UPSTREAM:…}'})")
    if "/data" not in mounts or "/" in mounts["/data"]:
        problems.append(f"{edge}: /data (certificates, the internal CA) is not on a named volume")
    domain = interpolations(c.env(edge).get("DOMAIN", ""))
    if not domain or domain[0].name != "DOMAIN" or domain[0].op != ":?":
        problems.append(f"{edge}: DOMAIN must be ${{DOMAIN:?message}}")
    networks = c.services[edge].get("networks") or {}
    shared = {n: (spec or {}) for n, spec in (networks.items() if isinstance(networks, dict) else [])
              if n in (c.services[gateway].get("networks") or [])}
    addresses = {spec.get("ipv4_address") for spec in shared.values()} - {None}
    trusted = c.env(gateway).get(env_name(GatewaySettings, "trusted_proxies"), "")
    if not addresses:
        problems.append(f"{edge}: no fixed ipv4_address on a network it shares with {gateway}")
    elif {t.strip() for t in trusted.split(",") if t.strip()} != addresses:
        problems.append(f"{gateway}: GATEWAY_TRUSTED_PROXIES={trusted!r} is not exactly {edge}'s address "
                        f"{sorted(addresses)}")
    for net, spec in shared.items():
        subnets = [cfg.get("subnet") for cfg in ((c.data.get("networks") or {}).get(net) or {})
                   .get("ipam", {}).get("config", [])]
        address = spec.get("ipv4_address")
        if address and not any(s and ipaddress.ip_address(address) in ipaddress.ip_network(s) for s in subnets):
            problems.append(f"network {net}: {edge}'s {address} is in none of its subnets {subnets}")
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        name = env_name(APP_SETTINGS[module], "public_base_url")
        value = c.env(svc).get(name, "")
        if not value.startswith("https://") or [i.name for i in interpolations(value)] != ["DOMAIN"]:
            problems.append(f"{svc}: {name} must be https://${{DOMAIN:?…}}, is {value!r}")
    return problems


def _initdb_sql(c: Compose, svc: str) -> tuple[str, list[str]]:
    """The text of the init scripts mounted into the postgres image's initdb directory."""
    texts, problems = [], []
    for volume in c.services[svc].get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":")[0]
        if not target.startswith(INITDB_DIR) or not source.startswith("."):
            continue
        path = (c.base_dir / source).resolve()
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        if not path.exists():
            problems.append(f"{svc}: init script source {source} does not exist")
        texts += [f.read_text(encoding="utf-8") for f in files
                  if f.is_file() and f.suffix in (".sql", ".sh", ".psql")]
    return "\n".join(texts), problems


def check_databases(c: Compose) -> list[str]:
    postgres = c.image_of("postgres")
    if postgres is None:
        return ["no postgres service (image postgres:16…)"]
    problems = []
    image = str(c.services[postgres]["image"]).split("/")[-1]
    if not image.startswith("postgres:16"):
        problems.append(f"{postgres}: image {image} is not PostgreSQL 16")
    sql, init_problems = _initdb_sql(c, postgres)
    problems += init_problems
    created = {m.lower() for m in re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)", sql, re.IGNORECASE)}
    owners = {d.lower(): o.lower() for d, o in
              re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)\"?\s+OWNER\s+\"?(\w+)", sql, re.IGNORECASE)}
    superusers = {r.lower() for r in re.findall(r"CREATE\s+ROLE\s+\"?(\w+)\"?[^;]*\bSUPERUSER\b", sql,
                                                re.IGNORECASE)}
    admin = c.env(postgres).get("POSTGRES_USER", "postgres")
    if not created:
        problems.append(f"{postgres}: no init script mounted into {INITDB_DIR} creates a database")
    seen: dict[str, str] = {}
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        cls = APP_SETTINGS[module]
        name = env_name(cls, "database_url")
        url = c.given(svc).get(name)
        if not url:
            continue  # reported by check_required_env
        parts = urlsplit(substituted(url))
        database = parts.path.lstrip("/")
        own = service_name(module)
        if not parts.scheme.startswith("postgresql"):
            problems.append(f"{svc}: {name} is not a PostgreSQL URL: {url}")
        if parts.hostname != postgres:
            problems.append(f"{svc}: {name} points at host {parts.hostname!r}, not the {postgres} service")
        if database != own:
            problems.append(f"{svc}: {name} names database {database!r}, not its own database {own!r}")
        if database in seen:
            problems.append(f"{svc}: {name} shares database {database!r} with {seen[database]}")
        seen[database] = svc
        if database not in created:
            problems.append(f"{svc}: database {database!r} is not created by the postgres init script "
                            f"(it creates {sorted(created)})")
        if parts.username == admin:
            problems.append(f"{svc}: {name} connects as {admin}, the superuser; use the app's own role")
        elif owners.get(database) != parts.username:
            problems.append(f"{svc}: {name} connects as {parts.username!r}, not the owner of {database!r} "
                            f"({owners.get(database)!r} in the init script)")
        if parts.username in superusers:
            problems.append(f"{svc}: role {parts.username!r} is made a superuser by the init script")
        role_password = f"{own.upper()}_DB_PASSWORD"
        if role_password not in c.secrets(postgres):
            problems.append(f"{postgres}: {role_password} is not mounted, the init script cannot make "
                            f"the {own} role")
        elif parts.password not in (made_secrets().get(role_password), PLACEHOLDER):
            problems.append(f"{svc}: {name}'s password is not {role_password}, the {own} role's")
    return problems


def check_event_bus(c: Compose) -> list[str]:
    problems = []
    nats = c.image_of("nats")
    if nats is None:
        return ["no nats service"]
    cmd = c.command(nats)
    if not ({"-js", "--jetstream"} & set(cmd)):
        problems.append(f"{nats}: JetStream is not enabled (no -js in command {cmd!r})")
    store = next((cmd[i + 1] for i, arg in enumerate(cmd[:-1]) if arg in ("-sd", "--store_dir")), None)
    mounts = [str(v.get("target") if isinstance(v, dict) else str(v).split(":")[1])
              for v in c.services[nats].get("volumes") or []]
    if store is None or not any(store == m or store.startswith(m.rstrip("/") + "/") for m in mounts):
        problems.append(f"{nats}: the JetStream store ({store}) is not on a volume (volumes: {mounts})")
    for module in ("services.orders", "services.notify"):
        svc = c.app_service(module)
        if svc is None:
            continue
        name = env_name(APP_SETTINGS[module], "event_bus_url")
        url = c.env(svc).get(name, "")
        if not url.startswith("nats://"):
            problems.append(f"{svc}: {name} must start with nats://, is {url!r}")
        elif urlsplit(url).hostname != nats:
            problems.append(f"{svc}: {name} points at {urlsplit(url).hostname!r}, not the {nats} service")
    return problems


def check_smtp(c: Compose) -> list[str]:
    svc = c.app_service("services.notify")
    if svc is None:
        return []
    name = env_name(NotifySettings, "smtp_url")
    url = c.env(svc).get(name, "")
    if not url.startswith("smtp://"):
        return [f"{svc}: {name} must be an smtp:// URL, is {url!r}"]
    parts = urlsplit(url)
    if parts.hostname not in c.services or parts.port != 1025:
        return [f"{svc}: {name}={url} is not the SMTP port 1025 of a compose service"]
    return []


def check_service_urls(c: Compose) -> list[str]:
    """``<APP>_URL`` settings point at that app's compose service and port."""
    problems = []
    by_name = {service_name(m): m for m in APP_SETTINGS}
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        cls = APP_SETTINGS[module]
        for field in cls.model_fields:
            target = by_name.get(field.removesuffix("_url")) if field.endswith("_url") else None
            url = c.env(svc).get(env_name(cls, field))
            if target is None or not url:
                continue
            parts = urlsplit(url)
            want = (c.app_service(target), c.port_of(target))
            if (parts.hostname, parts.port) != want:
                problems.append(f"{svc}: {env_name(cls, field)}={url} should point at "
                                f"http://{want[0]}:{want[1]} (the {target} service)")
    return problems


def check_secrets(c: Compose) -> list[str]:
    """Secrets are files: compose's `secrets:`, each declared with a file under ./secrets that
    deploy/compose_secrets.py makes, mounted as /run/secrets/<NAME> where SECRETS_DIR points; no
    secret in an environment, written in the file or interpolated from the shell."""
    problems = []
    secret_settings = set().union(*(secret_env_names(cls) for cls in APP_SETTINGS.values()))
    for where, value in _strings(c.data, "compose"):
        for it in interpolations(value):
            if SECRET_NAME.search(it.name) or it.name in secret_settings:
                problems.append(f"{where}: {it.text} takes a secret from the shell's environment; "
                                f"mount it as a file (secrets:)")
    declared = c.data.get("secrets") or {}
    makes = set(compose_secrets.names())
    for name, spec in declared.items():
        source = str((spec or {}).get("file", ""))
        if source != SECRETS_FOLDER + name:
            problems.append(f"secrets.{name}: must be file: {SECRETS_FOLDER}{name}, is {spec!r}")
        if name not in makes:
            problems.append(f"secrets.{name}: deploy/compose_secrets.py does not make it")
    mounted = set()
    for svc in c.services:
        for name in c.secrets(svc):
            mounted.add(name)
            if name not in declared:
                problems.append(f"{svc}: mounts secret {name}, which is not declared under secrets:")
    for name in sorted(set(declared) - mounted):
        problems.append(f"secrets.{name}: declared but mounted by no service")
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        env = c.env(svc)
        for name in sorted((secret_env_names(APP_SETTINGS[module]) | {env_name(APP_SETTINGS[module], "database_url")})
                           & set(env)):
            problems.append(f"{svc}: {name} is in {svc}'s environment; mount it as a secret file")
        if c.secrets(svc) and env.get("SECRETS_DIR") != SECRETS_MOUNT:
            problems.append(f"{svc}: mounts secrets but SECRETS_DIR is {env.get('SECRETS_DIR')!r}, "
                            f"not {SECRETS_MOUNT}")
        url = env.get(env_name(APP_SETTINGS[module], "database_url"), "")
        password = urlsplit(substituted(url)).password
        if password and password != PLACEHOLDER:
            problems.append(f"{svc}: the database password is written in the compose file")
    postgres = c.image_of("postgres")
    if postgres:
        env = c.env(postgres)
        if "POSTGRES_PASSWORD" in env:
            problems.append(f"{postgres}: POSTGRES_PASSWORD is in the environment; use POSTGRES_PASSWORD_FILE")
        target = env.get("POSTGRES_PASSWORD_FILE", "")
        if target.removeprefix(SECRETS_MOUNT + "/") not in c.secrets(postgres):
            problems.append(f"{postgres}: POSTGRES_PASSWORD_FILE={target!r} is not a secret it mounts")
    return problems


def check_health_and_order(c: Compose) -> list[str]:
    """Healthchecks on every service; apps wait (with a condition) for what they talk to."""
    problems = []
    for svc, spec in c.services.items():
        if not (spec.get("healthcheck") or {}).get("test"):
            problems.append(f"{svc}: no healthcheck")
    for svc, module in c.apps().items():
        spec = c.services[svc]
        if module in APP_SETTINGS:
            test = " ".join(map(str, (spec.get("healthcheck") or {}).get("test") or []))
            port = c.port_of(module)
            if not re.search(rf"(127\.0\.0\.1|localhost):{port}/(healthz|readyz)", test):
                problems.append(f"{svc}: healthcheck {test!r} does not probe /healthz or /readyz on "
                                f"its port {port}")
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{svc}: depends_on is a list; use the long form with a condition")
            depends = {name: {} for name in depends}
        for name, cond in depends.items():
            condition = (cond or {}).get("condition")
            if name not in c.services:
                problems.append(f"{svc}: depends on unknown service {name}")
            elif condition is None:
                problems.append(f"{svc}: depends_on {name} has no condition")
            elif condition == "service_healthy" and not c.services[name].get("healthcheck"):
                problems.append(f"{svc}: waits for {name} to be healthy, but {name} has no healthcheck")
        talks_to = {urlsplit(substituted(v)).hostname for v in c.given(svc).values() if "://" in v}
        for name in sorted((talks_to & set(c.services)) - set(depends)):
            problems.append(f"{svc}: talks to {name} but does not depend_on it")
    return problems


def check_settings_accept_env(c: Compose) -> list[str]:
    """Each app's settings class, given exactly the environment compose gives it (every variable
    set), validates: right types and values, and nothing the production checks refuse (short or
    development secrets, missing keys)."""
    problems = []
    for svc, module in c.apps().items():
        if module not in APP_SETTINGS:
            continue
        env = {name: substituted(value) for name, value in c.env(svc).items()}
        with tempfile.TemporaryDirectory() as folder:
            for name in c.secrets(svc):  # mounted as compose mounts them, read through SECRETS_DIR
                if name in made_secrets():
                    (Path(folder) / name).write_text(made_secrets()[name] + "\n", encoding="utf-8")
            if "SECRETS_DIR" in env:
                env["SECRETS_DIR"] = folder
            for cls in (APP_SETTINGS[module], *SHARED_SETTINGS):
                with mock.patch.dict(os.environ, env, clear=True):
                    try:
                        cls(_env_file=None)
                    except Exception as exc:  # ValidationError, InsecureSettingError, …
                        detail = " ".join(str(exc).split())
                        problems.append(f"{svc}: {cls.__name__} refuses its environment: {detail}")
    return problems


CHECKS: list[Callable[[Compose], list[str]]] = [
    check_app_commands, check_env_names, check_required_env, check_settings_accept_env,
    check_one_image, check_ports, check_edge, check_databases, check_event_bus, check_smtp, check_service_urls,
    check_secrets, check_health_and_order,
]


# --- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


def test_accepted_names_come_from_the_settings_classes() -> None:
    # A guard on the derivation itself, so that the checks below cannot pass vacuously.
    assert "CATALOG_HOST" in accepted_env("services.catalog")
    assert "ENVIRONMENT" in accepted_env("services.catalog")
    assert "LOG_FORMAT" in accepted_env("gateway")
    assert "EVENT_BUS_URL" in accepted_env("services.orders")
    assert "SMTP_URL" not in accepted_env("services.orders")
    assert "ORDERS_EVENT_BUS_URL" not in accepted_env("services.orders")  # unprefixed alias
    assert readers("SMTP_URL") == ["services.notify"]
    assert secret_env_names(GatewaySettings) == {"SERVICE_TOKEN", "GATEWAY_JWT_PRIVATE_KEY", "METRICS_TOKEN"}
    assert "CATALOG_DATA_KEY" not in secret_env_names(GatewaySettings)


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_compose_file(compose: Compose, check: Callable[[Compose], list[str]]) -> None:
    problems = check(compose)
    assert problems == [], f"docker-compose.yml, {check.__name__}:\n  " + "\n  ".join(problems)


def test_compose_has_the_four_apps(compose: Compose) -> None:
    assert sorted(compose.apps().values()) == sorted(APP_SETTINGS), compose.apps()


# Each mutation breaks the real compose file in one way; the named check must report it.
def _set_env(svc: str, name: str, value: str | None):
    def mutate(data: dict) -> None:
        env = data["services"][svc]["environment"]
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    return mutate


def _rename_env(svc: str, old: str, new: str):
    def mutate(data: dict) -> None:
        env = data["services"][svc]["environment"]
        env[new] = env.pop(old)
    return mutate


def _set(svc: str, key: str, value: object):
    def mutate(data: dict) -> None:
        if value is None:
            data["services"][svc].pop(key, None)
        else:
            data["services"][svc][key] = value
    return mutate


def _unmount(svc: str, name: str):
    def mutate(data: dict) -> None:
        data["services"][svc]["secrets"].remove(name)
    return mutate


def _mount(svc: str, name: str):
    def mutate(data: dict) -> None:
        data["services"][svc]["secrets"].append(name)
    return mutate


MUTATIONS = [
    ("renamed variable", _rename_env("catalog", "CATALOG_HOST", "CATALOG_HOSTNAME"),
     check_env_names, "CATALOG_HOSTNAME is not a setting of any app"),
    ("another app's variable", _set_env("gateway", "ORDERS_CATALOG_URL", "http://catalog:8001"),
     check_env_names, "ORDERS_CATALOG_URL is read by services.orders, not by gateway"),
    ("SMTP_URL on orders", _set_env("orders", "SMTP_URL", "smtp://mailpit:1025"),
     check_env_names, "SMTP_URL is read by services.notify, not by services.orders"),
    ("prefixed shared setting", _rename_env("orders", "EVENT_BUS_URL", "ORDERS_EVENT_BUS_URL"),
     check_env_names, "ORDERS_EVENT_BUS_URL is not a setting"),
    ("missing host", _set_env("notify", "NOTIFY_HOST", None),
     check_required_env, "NOTIFY_HOST must be '0.0.0.0'"),
    ("development mode", _set_env("gateway", "ENVIRONMENT", "development"),
     check_required_env, "ENVIRONMENT must be 'production'"),
    ("missing secret", _unmount("orders", "SERVICE_TOKEN"),
     check_required_env, "SERVICE_TOKEN is not set"),
    ("another app's secret", _mount("gateway", "CATALOG_DATA_KEY"),
     check_env_names, "CATALOG_DATA_KEY is read by services.catalog, not by gateway"),
    ("missing upstream", _set_env("gateway", "GATEWAY_NOTIFY_URL", None),
     check_required_env, "GATEWAY_NOTIFY_URL is not set"),
    ("no JWT public key", lambda d: [svc["secrets"].remove("JWT_PUBLIC_KEY")
                                     for svc in d["services"].values() if "build" in svc],
     check_settings_accept_env, "JWT_PUBLIC_KEY"),
    ("secrets not read", lambda d: d["services"]["orders"]["environment"].pop("SECRETS_DIR"),
     check_settings_accept_env, "OrdersSettings refuses its environment"),
    ("bad port", _set_env("catalog", "CATALOG_PORT", "eighty"),
     check_settings_accept_env, "CatalogSettings refuses its environment"),
    ("bad log format", _set_env("notify", "LOG_FORMAT", "xml"),
     check_settings_accept_env, "SharedSettings refuses its environment"),
    ("short literal secret", _set_env("orders", "SERVICE_TOKEN", "short"),
     check_settings_accept_env, "OrdersSettings refuses its environment: 1 validation error"),
    ("image without a command", lambda d: d["services"].update(worker={"image": "cho-vuon:latest"}),
     check_app_commands, "worker: command [] is not `python -m <module> serve`"),
    ("unknown module", _set("notify", "command", ["python", "-m", "services.notifier", "serve"]),
     check_app_commands, "services.notifier"),
    ("no serve", _set("notify", "command", "python -m services.notify migrate"),
     check_app_commands, "is not `python -m <module> serve`"),
    ("other image", _set("orders", "image", "cho-vuon-orders:latest"),
     check_one_image, "not built from one Dockerfile"),
    ("other Dockerfile", _set("orders", "build", {"context": ".", "dockerfile": "Dockerfile.orders"}),
     check_one_image, "does not exist"),
    ("published service port", _set("catalog", "ports", ["8001:8001"]),
     check_ports, "catalog publishes"),
    ("published gateway", _set("gateway", "ports", ["8000:8000"]),
     check_ports, "gateway publishes"),
    ("no HTTPS port", _set("caddy", "ports", ["80:80"]),
     check_ports, "port 443 is not published"),
    ("no edge", lambda d: d["services"].pop("caddy"), check_ports, "no caddy service"),
    ("trusts everyone", _set_env("gateway", "GATEWAY_TRUSTED_PROXIES", "0.0.0.0/0"),
     check_edge, "is not exactly caddy's address"),
    ("trusts nobody", _set_env("gateway", "GATEWAY_TRUSTED_PROXIES", None),
     check_edge, "is not exactly caddy's address"),
    ("moving edge address", lambda d: d["services"]["caddy"]["networks"]["edge"].pop("ipv4_address"),
     check_edge, "no fixed ipv4_address"),
    ("address outside the subnet", lambda d: d["services"]["caddy"]["networks"]["edge"].update(
        ipv4_address="10.9.9.9"), check_edge, "is in none of its subnets"),
    ("certificates not kept", _set("caddy", "volumes", ["./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro"]),
     check_edge, "/data (certificates"),
    ("no Caddyfile", _set("caddy", "volumes", ["caddydata:/data"]), check_edge, "no Caddyfile"),
    ("optional domain", _set_env("caddy", "DOMAIN", "${DOMAIN:-localhost}"), check_edge, "DOMAIN must be"),
    ("plain HTTP links", _set_env("orders", "ORDERS_PUBLIC_BASE_URL", "http://${DOMAIN:?set it}"),
     check_edge, "ORDERS_PUBLIC_BASE_URL must be https://"),
    ("shared database", _set_env("orders", "ORDERS_DATABASE_URL", "postgresql+asyncpg://orders:"
                                 "${ORDERS_DB_PASSWORD:?set it}@postgres:5432/catalog"),
     check_databases, "names database 'catalog', not its own database 'orders'"),
    ("as the superuser", _set_env("orders", "ORDERS_DATABASE_URL", "postgresql+asyncpg://chovuon:"
                                  "${POSTGRES_PASSWORD:?set it}@postgres:5432/orders"),
     check_databases, "connects as chovuon, the superuser"),
    ("another app's role", _set_env("orders", "ORDERS_DATABASE_URL", "postgresql+asyncpg://catalog:"
                                    "${CATALOG_DB_PASSWORD:?set it}@postgres:5432/orders"),
     check_databases, "connects as 'catalog', not the owner of 'orders'"),
    ("no init script", _set("postgres", "volumes", ["pgdata:/var/lib/postgresql/data"]),
     check_databases, "creates a database"),
    ("postgres 15", _set("postgres", "image", "postgres:15-alpine"),
     check_databases, "is not PostgreSQL 16"),
    ("no JetStream", _set("nats", "command", ["nats-server", "-m", "8222"]),
     check_event_bus, "JetStream is not enabled"),
    ("HTTP event bus", _set_env("notify", "EVENT_BUS_URL", ""),
     check_event_bus, "EVENT_BUS_URL must start with nats://"),
    ("no SMTP", _set_env("notify", "SMTP_URL", None),
     check_smtp, "SMTP_URL must be an smtp:// URL"),
    ("wrong upstream port", _set_env("gateway", "GATEWAY_ORDERS_URL", "http://orders:8001"),
     check_service_urls, "GATEWAY_ORDERS_URL=http://orders:8001 should point at http://orders:8002"),
    ("secret from the shell", _set_env("notify", "SERVICE_TOKEN", "${SERVICE_TOKEN:?set it}"),
     check_secrets, "${SERVICE_TOKEN:?set it} takes a secret from the shell's environment"),
    ("literal secret", _set_env("catalog", "SERVICE_TOKEN", "x" * 40),
     check_secrets, "SERVICE_TOKEN is in catalog's environment; mount it as a secret file"),
    ("database URL in the environment", _set_env("catalog", "CATALOG_DATABASE_URL",
                                                 "postgresql+asyncpg://catalog:${CATALOG_DB_PASSWORD:?x}@postgres:5432/catalog"),
     check_secrets, "CATALOG_DATABASE_URL is in catalog's environment"),
    ("secrets dir elsewhere", _set_env("notify", "SECRETS_DIR", "/etc/cho-vuon"),
     check_secrets, "SECRETS_DIR is '/etc/cho-vuon', not /run/secrets"),
    ("undeclared secret", lambda d: d["secrets"].pop("METRICS_TOKEN"),
     check_secrets, "gateway: mounts secret METRICS_TOKEN, which is not declared"),
    ("secret file elsewhere", lambda d: d["secrets"]["SERVICE_TOKEN"].update(file="/etc/token"),
     check_secrets, "secrets.SERVICE_TOKEN: must be file: ./secrets/SERVICE_TOKEN"),
    ("secret nobody makes", lambda d: d["secrets"].update(STRIPE_KEY={"file": "./secrets/STRIPE_KEY"}),
     check_secrets, "secrets.STRIPE_KEY: deploy/compose_secrets.py does not make it"),
    ("postgres password in the environment", _set_env("postgres", "POSTGRES_PASSWORD", "hunter2hunter2"),
     check_secrets, "POSTGRES_PASSWORD is in the environment"),
    ("role password not mounted", _unmount("postgres", "ORDERS_DB_PASSWORD"),
     check_databases, "ORDERS_DB_PASSWORD is not mounted"),
    ("literal db password", _set_env("catalog", "CATALOG_DATABASE_URL",
                                     "postgresql+asyncpg://catalog:hunter2@postgres:5432/catalog"),
     check_secrets, "database password is written in the compose file"),
    ("no wait for nats", lambda d: d["services"]["orders"]["depends_on"].pop("nats"),
     check_health_and_order, "orders: talks to nats but does not depend_on it"),
    ("wrong health port", lambda d: d["services"]["catalog"]["healthcheck"].update(
        test=["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen("
              "'http://127.0.0.1:8000/readyz')"]),
     check_health_and_order, "on its port 8001"),
]


@pytest.mark.parametrize(("mutate", "check", "expected"), [m[1:] for m in MUTATIONS],
                         ids=[m[0] for m in MUTATIONS])
def test_check_reports_a_broken_compose(compose: Compose, mutate, check, expected: str) -> None:
    assert check(compose) == [], "the real file must pass before a mutation can be judged"
    broken = Compose(copy.deepcopy(compose.data), compose.base_dir)
    mutate(broken.data)
    problems = check(broken)
    assert any(expected in p for p in problems), (
        f"{check.__name__} did not report {expected!r} for the broken compose; it reported {problems}")


def test_renaming_a_variable_in_a_copy_of_the_file_fails(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "      ORDERS_NOTIFY_URL:" in text
    copy_path = tmp_path / "docker-compose.yml"
    copy_path.write_text(text.replace("      ORDERS_NOTIFY_URL:", "      ORDERS_NOTIFIER_URL:"),
                         encoding="utf-8")
    broken = load_compose(copy_path)
    problems = check_env_names(broken) + check_required_env(broken)
    assert any("ORDERS_NOTIFIER_URL is not a setting" in p for p in problems), problems
    assert any("ORDERS_NOTIFY_URL is not set" in p for p in problems), problems


def test_interpolation_parser() -> None:
    found = interpolations("a${A:?set it}b$${NOT}c${B}d$C${D:-x}")
    assert [(i.name, i.op, i.arg) for i in found] == [("A", ":?", "set it"), ("B", "", ""),
                                                      ("C", "", ""), ("D", ":-", "x")]
    assert substituted("u:${P:?set it}@h/db") == f"u:{PLACEHOLDER}@h/db"
    assert substituted("${U:-http://x:1}/a$$b") == "http://x:1/a$b"


# --- the Dockerfile and the operations guide ------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in lines if line and not line.startswith("#")]


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$|^FROM python:3\.11-slim\b", text, re.M), \
        "the image is not based on python:3.11-slim"
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "-r requirements.lock" in runs, "dependencies are not installed from requirements.lock"
    assert re.search(r"install --no-deps \.(\s|$)", runs), "the project is not installed with --no-deps ."
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    # Every app setting the image sets is one that exists.
    accepted = set().union(*(accepted_env(m) for m in APP_SETTINGS))
    for op, arg in instructions:
        if op != "ENV":
            continue
        for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", arg):
            if name == "PATH" or name.startswith(("PYTHON", "PIP_")):
                continue
            assert name in accepted, f"Dockerfile sets {name}, which no app reads"


def test_dockerignore_keeps_secrets_and_the_venv_out() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in lines or {".env", ".venv", ".git"} <= set(lines), \
        ".dockerignore must leave out .env, .venv and .git"
    assert "!.env" not in lines


def test_operations_doc_lists_every_setting() -> None:
    """The table in docs/operations.md names exactly the variables the settings classes read, and
    which apps read each one."""
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*`([A-Z0-9_]+)`\s*\|([^|]*)\|", doc, re.M)
    documented = {name: set(re.findall(r"[a-z]+", apps)) for name, apps in rows}
    expected: dict[str, set[str]] = {}
    for module in APP_SETTINGS:
        for name in accepted_env(module):
            expected.setdefault(name, set()).add(service_name(module))
    missing = sorted(set(expected) - set(documented))
    unknown = sorted(set(documented) - set(expected))
    assert not missing and not unknown, (
        f"docs/operations.md env table is out of date: missing {missing}, no longer read {unknown}")
    everyone = {service_name(m) for m in APP_SETTINGS}
    for name, apps in expected.items():
        shown = everyone if "all" in documented[name] else documented[name] & everyone
        assert shown == apps, (f"docs/operations.md says {name} is read by {sorted(shown)}, "
                               f"it is read by {sorted(apps)}")


# --- the Caddyfile, read by Debian's caddy --------------------------------------------------------


def _caddy_json(tmp_path: Path, **env: str) -> dict:
    import shutil

    from tests.support.databases import require

    caddy = shutil.which("caddy")
    require(caddy is not None, "caddy is not installed (Debian: apt-get install -y caddy)")
    done = subprocess.run([caddy, "adapt", "--config", str(ROOT / "deploy" / "caddy" / "Caddyfile"),
                           "--adapter", "caddyfile"], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(("domain", "tls", "issuer"), [
    ("chovuon.example", "grower@example.com", "acme"), ("192.168.1.20", "internal", "internal")])
def test_the_caddyfile_as_compose_runs_it(tmp_path: Path, domain: str, tls: str, issuer: str) -> None:
    """With compose's environment (DOMAIN and CADDY_TLS, the rest defaults): the standard ports, the
    site on DOMAIN, the chosen certificate issuer, HSTS, the proxy to gateway:8000."""
    config = _caddy_json(tmp_path, DOMAIN=domain, CADDY_TLS=tls)
    http = config["apps"]["http"]
    assert http.get("http_port", 80) == 80 and http.get("https_port", 443) == 443
    (server,) = http["servers"].values()
    assert server["listen"] == [":443"]
    assert server.get("automatic_https", {}).get("disable_redirects") is not True  # HTTP → HTTPS
    route = server["routes"][0]
    assert route["match"] == [{"host": [domain]}]
    text = json.dumps(route)
    assert '"Strict-Transport-Security": ["max-age=31536000; includeSubDomains"]' in text
    assert '"dial": "gateway:8000"' in text
    (policy,) = config["apps"]["tls"]["automation"]["policies"]
    assert policy["subjects"] == [domain]
    assert [i["module"] for i in policy["issuers"]][0] == issuer
    if issuer == "acme":
        assert policy["issuers"][0]["email"] == tls
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
