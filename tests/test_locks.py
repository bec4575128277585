"""Two locks: requirements.lock (what the apps run on) and requirements-dev.lock (that plus the tools to
test, fuzz and bench), both hashed; the image and `make run` install the runtime one only."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME, DEV = ROOT / "requirements.lock", ROOT / "requirements-dev.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==([^\s\\]+)"
                  r"((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})*)", re.M)


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes)."""
    return {m.group(1).lower().replace("_", "-"): (m.group(2), m.group(3).count("--hash="))
            for m in _PIN.finditer(path.read_text(encoding="utf-8"))}


def via(path: Path, name: str) -> set[str]:
    """What pulls ``name`` into a lock (uv's ``# via`` comments)."""
    text = path.read_text(encoding="utf-8")
    block = re.search(rf"^{re.escape(name)}==.*?(?=^[A-Za-z0-9]|\Z)", text, re.M | re.S | re.I)
    found = re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9][\w.\-]*(?: \(pyproject\.toml\))?)\s*$", block.group(0), re.M)
    return {f for f in found if f != "via"}


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", requirement).group(0).lower().replace("_", "-")


def test_every_pin_is_hashed() -> None:
    for lock in (RUNTIME, DEV):
        found = pins(lock)
        lines = [line for line in lock.read_text().splitlines() if re.match(r"^[A-Za-z0-9]", line)]
        assert len(found) == len(lines) > 10, (lock.name, len(found), len(lines))
        unhashed = sorted(name for name, (_, hashes) in found.items() if hashes == 0)
        assert unhashed == [], f"{lock.name}: no hash for {unhashed}"


def test_the_runtime_lock_has_no_development_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime_direct = {_name(r) for r in project["dependencies"]}
    dev_direct = {_name(r) for r in project["optional-dependencies"]["dev"]} - runtime_direct
    runtime, dev = pins(RUNTIME), pins(DEV)
    # A development tool may be in the runtime lock only because a runtime package needs it (pyyaml:
    # uvicorn[standard]), never for its own sake.
    leaked = sorted(n for n in dev_direct & set(runtime) if not via(RUNTIME, n) - {"cho-vuon (pyproject.toml)"})
    assert leaked == [], f"development tools in the runtime lock: {leaked}"
    assert dev_direct <= set(dev) and runtime_direct <= set(runtime)
    assert {"pytest", "playwright", "schemathesis", "matplotlib"} <= set(dev) - set(runtime)
    # Developers test what runs: every runtime package at the very same version in both locks.
    different = {n: (v, dev.get(n, ("missing",))[0]) for n, (v, _) in runtime.items() if dev.get(n, ("",))[0] != v}
    assert different == {}, different


def test_the_locks_are_what_make_lock_writes(tmp_path) -> None:
    """pyproject.toml and the locks agree: compiling again (keeping the pinned versions) gives the same
    pins, so a dependency added to pyproject.toml without `make lock` fails here."""
    uv = ROOT / ".venv" / "bin" / "uv"
    if not uv.exists():
        uv = Path(shutil.which("uv") or "uv")
    for lock, extra in ((RUNTIME, []), (DEV, ["--extra", "dev", "-c", str(RUNTIME)])):
        out = tmp_path / lock.name
        shutil.copy(lock, out)  # uv keeps the versions already in the output file
        done = subprocess.run([str(uv), "pip", "compile", str(ROOT / "pyproject.toml"), "--quiet", "--generate-hashes",
                               "--python-version", "3.11", *extra, "-o", str(out)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert pins(out) == pins(lock), f"{lock.name} is out of date: run make lock"


def test_the_image_and_make_run_install_the_runtime_lock_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes -r requirements\.lock", dockerfile)
    assert "requirements-dev.lock" not in dockerfile
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements-dev.lock" not in ignore and "*" in ignore  # not even in the build context
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # -n: print what would run, -B: as if nothing were installed yet.
    run = subprocess.run([make, "-n", "-B", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "--require-hashes -r requirements.lock" in run and "requirements-dev.lock" not in run, run
    test = subprocess.run([make, "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "--require-hashes -r requirements-dev.lock" in test, test
