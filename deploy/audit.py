"""Audit the locked dependencies for known vulnerabilities.

    .venv/bin/python deploy/audit.py check                    # requirements.lock (what CI runs: make audit)
    .venv/bin/python deploy/audit.py check requirements-dev.lock
    .venv/bin/python deploy/audit.py check --online           # pip-audit first, where it can reach its service
    .venv/bin/python deploy/audit.py refresh SOURCE           # a new snapshot of the advisories

``check`` reads every ``name==version`` of the lock and looks it up in deploy/audit-advisories.json, a
snapshot of the PyPA advisory database (OSV records) cut down to the packages of our two locks: a version
is affected when an advisory lists it (``versions``) or an ``ECOSYSTEM`` range holds it (introduced ≤
version < fixed, or ≤ last_affected; compared with ``packaging.version``). A finding whose id (or alias)
is in deploy/audit-ignore.toml, with its reason and the date it was decided, is shown but does not fail;
any other fails the check (exit status 1), as does an ignore entry without an id, a reason or a date.
The snapshot is dated: its date is printed, with a warning once it is older than 90 days.

``--online`` runs ``pip-audit`` first (when it is installed) against its own service with the same
ignore list; when it cannot reach the service (no network but the package index) the snapshot is the
check, and the script says so. ``refresh SOURCE`` rewrites the snapshot from the advisory database:
SOURCE is a clone of github.com/pypa/advisory-database (a work tree, or a bare repository read with git)
or an OSV export downloaded as a zip (``https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip``).
docs/operations.md, "Known vulnerabilities".
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-dev.lock")
ADVISORIES = ROOT / "deploy" / "audit-advisories.json"
IGNORE = ROOT / "deploy" / "audit-ignore.toml"
MAX_AGE_DAYS = 90
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


class AuditError(Exception):
    """The audit cannot be made (a missing or malformed file): say so, exit 2."""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """Package (normalised name) → pinned version, from a pip-compile style lock."""
    try:
        pins = {normalise(name): version for name, version in PIN.findall(path.read_text(encoding="utf-8"))}
    except OSError as exc:
        raise AuditError(f"cannot read the lock {path}: {exc}") from None
    if not pins:
        raise AuditError(f"{path} pins no package (name==version)")
    return pins


# ── the ignore list ──────────────────────────────────────────────────────────────────────────────


def read_ignores(path: Path) -> dict[str, dict]:
    """Advisory id → its entry. Every entry needs an ``id``, a ``reason`` (why it does not apply, or what
    stands in for the fix) and the ``date`` it was decided (YYYY-MM-DD)."""
    if not path.exists():
        return {}
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("ignore", [])
    except tomllib.TOMLDecodeError as exc:
        raise AuditError(f"{path}: {exc}") from None
    problems, ignores = [], {}
    for n, entry in enumerate(entries, 1):
        where = f"{path.name}, entry {n} ({entry.get('id', 'no id')})"
        if not str(entry.get("id") or "").strip():
            problems.append(f"{where}: no id")
        if not str(entry.get("reason") or "").strip():
            problems.append(f"{where}: no reason (say why the advisory does not apply or what stands in for the fix)")
        try:
            dt.date.fromisoformat(str(entry.get("date")))
        except ValueError:
            problems.append(f"{where}: date {entry.get('date')!r} is not YYYY-MM-DD (when it was decided)")
        ignores[str(entry.get("id"))] = entry
    if problems:
        raise AuditError("the ignore list is malformed:\n  " + "\n  ".join(problems))
    return ignores


# ── matching ─────────────────────────────────────────────────────────────────────────────────────


def _version(text: str):
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


def affects(affected: dict, version: str) -> bool:
    """Whether one ``affected`` entry of an OSV record holds ``version``."""
    v = _version(version)
    if v is None:
        return version in affected.get("versions", [])
    if any(_version(x) == v for x in affected.get("versions", [])):
        return True
    for rng in affected.get("ranges", []):
        if rng.get("type") != "ECOSYSTEM":
            continue
        inside = False
        for event in rng.get("events", []):
            (kind, bound), = event.items()
            b = _version(bound) if bound != "0" else None
            if kind == "introduced":
                inside = inside or bound == "0" or (b is not None and v >= b)
            elif kind == "fixed" and b is not None and v >= b:
                inside = False
            elif kind == "last_affected" and b is not None and v > b:
                inside = False
            elif kind == "limit" and b is not None and v >= b:
                inside = False
        if inside:
            return True
    return False


def findings(pins: dict[str, str], advisories: list[dict]) -> list[dict]:
    """The advisories that hold a pinned version: id, aliases, package, version, fixed in, summary."""
    found = []
    for adv in advisories:
        for affected in adv.get("affected", []):
            name = normalise(affected.get("package", {}).get("name", ""))
            if name in pins and affects(affected, pins[name]):
                fixed = sorted({e["fixed"] for r in affected.get("ranges", []) for e in r.get("events", [])
                                if "fixed" in e and r.get("type") == "ECOSYSTEM"}, key=lambda x: _version(x) or x)
                found.append({"id": adv["id"], "aliases": adv.get("aliases", []), "package": name,
                              "version": pins[name], "fixed": fixed, "summary": adv.get("summary", "")})
                break
    return sorted(found, key=lambda f: (f["package"], f["id"]))


def ignored_by(finding: dict, ignores: dict[str, dict]) -> dict | None:
    return next((ignores[i] for i in (finding["id"], *finding["aliases"]) if i in ignores), None)


# ── the snapshot ─────────────────────────────────────────────────────────────────────────────────


def read_snapshot(path: Path) -> dict:
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
        dt.date.fromisoformat(snapshot["snapshot_date"])
        snapshot["advisories"]
    except (OSError, ValueError, KeyError) as exc:
        raise AuditError(f"the advisory snapshot {path} cannot be read ({exc}); refresh it: "
                         "deploy/audit.py refresh SOURCE") from None
    return snapshot


def _records_from_git(git_dir: Path, names: set[str]) -> tuple[list[dict], str, str]:
    import yaml

    def git(*args: str) -> str:
        return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True,
                              text=True).stdout

    date, commit = git("log", "-1", "--format=%cI %H", "HEAD").split()
    folders = {normalise(n): n for n in git("ls-tree", "--name-only", "HEAD:vulns").split()}
    records = []
    for name in sorted(names & folders.keys()):
        for file in git("ls-tree", "--name-only", f"HEAD:vulns/{folders[name]}").split():
            records.append(yaml.safe_load(git("show", f"HEAD:vulns/{folders[name]}/{file}")))
    return records, date[:10], f"github.com/pypa/advisory-database at {commit}"


def _records_from_tree(tree: Path, names: set[str]) -> tuple[list[dict], str, str]:
    import yaml

    if (tree / ".git").exists():
        return _records_from_git(tree / ".git", names)
    records = [yaml.safe_load(f.read_text(encoding="utf-8")) for folder in (tree / "vulns").iterdir()
               if normalise(folder.name) in names for f in sorted(folder.glob("*.yaml"))]
    return records, max((str(r.get("modified", ""))[:10] for r in records), default=""), f"{tree.name}/vulns"


def _records_from_zip(path: Path, names: set[str]) -> tuple[list[dict], str, str]:
    records, newest = [], ""
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            if member.endswith(".json"):
                record = json.load(io.TextIOWrapper(z.open(member), encoding="utf-8"))
                newest = max(newest, str(record.get("modified", ""))[:10])
                if any(normalise(a.get("package", {}).get("name", "")) in names for a in record.get("affected", [])):
                    records.append(record)
    return records, newest, f"the OSV export {path.name}"  # an export's date: its newest record's


def refresh(source: Path, out: Path, locks: tuple[Path, ...] = LOCKS) -> dict:
    """Rewrite ``out`` with the advisories of SOURCE (a clone of the PyPA advisory database, bare or not,
    or an OSV zip) for the packages of ``locks``, dated as the database is."""
    names = set().union(*(read_lock(lock) for lock in locks))
    if source.suffix == ".zip":
        records, date, origin = _records_from_zip(source, names)
    elif (source / "HEAD").exists() and (source / "objects").exists():
        records, date, origin = _records_from_git(source, names)
    elif (source / "vulns").is_dir():
        records, date, origin = _records_from_tree(source, names)
    else:
        raise AuditError(f"{source} is neither an OSV zip nor a clone of the advisory database (vulns/)")
    keep = []
    for r in records:
        if r.get("withdrawn"):
            continue
        affected = [{"package": {"name": a["package"]["name"], "ecosystem": a["package"].get("ecosystem")},
                     "ranges": [x for x in a.get("ranges", []) if x.get("type") == "ECOSYSTEM"],
                     "versions": a.get("versions", [])}
                    for a in r.get("affected", []) if normalise(a.get("package", {}).get("name", "")) in names]
        summary = r.get("summary") or " ".join(str(r.get("details", "")).split())[:240]
        keep.append({"id": r["id"], "aliases": r.get("aliases", []), "summary": summary,
                     "modified": str(r.get("modified", "")), "affected": affected})
    snapshot = {"source": origin, "snapshot_date": date, "refreshed": dt.date.today().isoformat(),
                "packages": sorted(names), "advisories": sorted(keep, key=lambda r: r["id"])}
    out.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return snapshot


# ── pip-audit, where it can reach its service ────────────────────────────────────────────────────


def pip_audit(lock: Path, ignores: dict[str, dict]) -> tuple[bool, str]:
    """(answered, what it said): pip-audit on ``lock`` with the ignore list. Not answered when it is not
    installed or cannot reach its vulnerability service."""
    exe = shutil.which("pip-audit") or (str(Path(sys.executable).with_name("pip-audit"))
                                       if Path(sys.executable).with_name("pip-audit").exists() else None)
    if exe is None:
        return False, "pip-audit is not installed"
    argv = [exe, "-r", str(lock), "--require-hashes", "--no-deps", "--disable-pip", "--progress-spinner", "off",
            *(x for i in ignores for x in ("--ignore-vuln", i))]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False, "pip-audit did not answer in 10 minutes"
    out = done.stdout + done.stderr
    unreachable = ("ConnectionError" in out or "Max retries exceeded" in out
                   or out.count("Dependency not found on PyPI") >= len(read_lock(lock)))
    if unreachable:
        return False, "pip-audit cannot reach its vulnerability service"
    return True, out.strip() + ("" if done.returncode == 0 else "\npip-audit found known vulnerabilities")


# ── main ─────────────────────────────────────────────────────────────────────────────────────────


def check(locks: list[Path], advisories: Path, ignore: Path, online: bool, today: dt.date | None = None) -> int:
    ignores = read_ignores(ignore)
    snapshot = read_snapshot(advisories)
    today = today or dt.date.today()
    age = (today - dt.date.fromisoformat(snapshot["snapshot_date"])).days
    print(f"advisories: {advisories.relative_to(ROOT) if advisories.is_relative_to(ROOT) else advisories}, "
          f"a snapshot of the PyPA advisory database of {snapshot['snapshot_date']} ({age} days old), "
          f"{len(snapshot['advisories'])} advisories for {len(snapshot.get('packages', []))} packages")
    if age > MAX_AGE_DAYS:
        print(f"warning: the snapshot is older than {MAX_AGE_DAYS} days: advisories published since "
              f"{snapshot['snapshot_date']} are not in it; refresh it (docs/operations.md, Known vulnerabilities)")
    failed = False
    for lock in locks:
        pins = read_lock(lock)
        if online:
            answered, said = pip_audit(lock, ignores)
            print(f"{lock.name}: pip-audit: {said}" if answered else f"{lock.name}: {said}; the snapshot is the check")
            failed |= answered and said.endswith("found known vulnerabilities")
        unknown = sorted(set(pins) - set(snapshot.get("packages", pins)))
        if unknown:
            print(f"{lock.name}: not in the snapshot (refresh it): {', '.join(unknown)}")
        found = findings(pins, snapshot["advisories"])
        open_ = [f for f in found if ignored_by(f, ignores) is None]
        for f in found:
            entry = ignored_by(f, ignores)
            aliases = f" ({', '.join(f['aliases'])})" if f["aliases"] else ""
            fixed = f"fixed in {', '.join(f['fixed'])}" if f["fixed"] else "no fixed version"
            state = f"ignored since {entry['date']}: {entry['reason']}" if entry else "VULNERABLE"
            print(f"  {f['package']}=={f['version']}: {f['id']}{aliases}, {fixed}; {state}\n    {f['summary'][:200]}")
        print(f"{lock.name}: {len(pins)} packages, {len(found)} known vulnerabilities, "
              f"{len(found) - len(open_)} ignored, {len(open_)} not: {'FAILED' if open_ else 'passed'}")
        failed |= bool(open_)
    unused = set(ignores) - {i for lock in locks for f in findings(read_lock(lock), snapshot["advisories"])
                             for i in (f["id"], *f["aliases"])}
    if unused:
        print(f"note: ignored but not found (remove them from {ignore.name} once sure): {', '.join(sorted(unused))}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="audit locks against the snapshot (and pip-audit with --online)")
    c.add_argument("locks", nargs="*", type=Path, default=[LOCKS[0]], help="locks to audit (requirements.lock)")
    c.add_argument("--online", action="store_true", help="run pip-audit first where it can reach its service")
    r = sub.add_parser("refresh", help="rewrite the snapshot from the advisory database or an OSV zip")
    r.add_argument("source", type=Path, help="a clone of github.com/pypa/advisory-database, or an OSV zip")
    for s in (c, r):
        s.add_argument("--advisories", type=Path, default=ADVISORIES, help="the snapshot file")
    c.add_argument("--ignore", type=Path, default=IGNORE, help="the ignore list")
    args = p.parse_args(argv)
    try:
        if args.command == "refresh":
            snap = refresh(args.source, args.advisories)
            print(f"wrote {args.advisories}: {len(snap['advisories'])} advisories for {len(snap['packages'])} "
                  f"packages, the database of {snap['snapshot_date']}")
            return 0
        return check(args.locks, args.advisories, args.ignore, args.online)
    except AuditError as exc:
        print(f"deploy/audit.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
