"""deploy/audit.py: the locks against the committed advisory snapshot, the ignore list, the refresh."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.servers import ROOT

sys.path.insert(0, str(ROOT / "deploy"))
import audit  # noqa: E402

LOCK = ROOT / "requirements.lock"


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "audit.py"), "check", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def lock(tmp_path: Path, *pins: str) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text("".join(f"{pin} \\\n    --hash=sha256:{'0' * 64}\n" for pin in pins))
    return path


def ignore(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ignore.toml"
    path.write_text(text)
    return path


def test_the_runtime_lock_passes() -> None:
    """Every finding in the real lock is one the ignore list gives a reason for (today: none)."""
    done = run(LOCK)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "requirements.lock: " in done.stdout and "passed" in done.stdout
    assert "VULNERABLE" not in done.stdout
    snapshot = json.loads(audit.ADVISORIES.read_text())
    assert f"of {snapshot['snapshot_date']}" in done.stdout  # the snapshot's date is said


def test_a_known_vulnerable_pin_fails_with_its_id(tmp_path: Path) -> None:
    done = run(lock(tmp_path, "starlette==0.24.0", "idna==3.10"), "--ignore", ignore(tmp_path, ""))
    assert done.returncode == 1, done.stdout
    assert "starlette==0.24.0: PYSEC-2023-48" in done.stdout and "VULNERABLE" in done.stdout
    assert "fixed in 0.25.0" in done.stdout and "FAILED" in done.stdout
    assert "idna" not in done.stdout.split("FAILED")[0].split("VULNERABLE")[-1]


def test_an_ignored_id_passes_and_says_why(tmp_path: Path) -> None:
    reasons = ignore(tmp_path, """
[[ignore]]
id = "PYSEC-2023-48"
reason = "no multipart forms reach Starlette's parser"
date = "2026-12-03"

[[ignore]]
id = "CVE-2023-29159"  # an alias of PYSEC-2023-83
reason = "no StaticFiles mount"
date = "2026-12-03"
""")
    done = run(lock(tmp_path, "starlette==0.24.0"), "--ignore", reasons)
    assert done.returncode == 0, done.stdout
    assert "ignored since 2026-12-03: no multipart forms reach Starlette's parser" in done.stdout
    assert "PYSEC-2023-83" in done.stdout and "VULNERABLE" not in done.stdout


@pytest.mark.parametrize("entry, said", [
    ('id = "PYSEC-2023-48"\ndate = "2026-12-03"', "no reason"),
    ('id = "PYSEC-2023-48"\nreason = "  "\ndate = "2026-12-03"', "no reason"),
    ('id = "PYSEC-2023-48"\nreason = "not used"', "is not YYYY-MM-DD"),
    ('reason = "not used"\ndate = "2026-12-03"', "no id"),
])
def test_a_malformed_ignore_entry_fails(tmp_path: Path, entry: str, said: str) -> None:
    done = run(lock(tmp_path, "starlette==0.24.0"), "--ignore", ignore(tmp_path, f"[[ignore]]\n{entry}\n"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the ignore list is malformed" in done.stderr and said in done.stderr


def test_versions_and_ranges() -> None:
    listed = {"versions": ["1.0", "1.1"], "ranges": []}
    assert audit.affects(listed, "1.1") and not audit.affects(listed, "1.2")
    ranged = {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.5"},
                                                         {"introduced": "2.0"}, {"last_affected": "2.3"}]}]}
    assert [audit.affects(ranged, v) for v in ("0.9", "1.0", "1.4.9", "1.5", "2.0", "2.3", "2.3.1")] == \
        [False, True, True, False, True, True, False]
    assert audit.affects({"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}, "9.9")
    git_only = {"ranges": [{"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc"}]}]}
    assert not audit.affects(git_only, "1.0")


def test_an_old_snapshot_is_said(tmp_path: Path, capsys) -> None:
    snapshot = json.loads(audit.ADVISORIES.read_text())
    taken = dt.date.fromisoformat(snapshot["snapshot_date"])
    empty = ignore(tmp_path, "")
    audit.check([LOCK], audit.ADVISORIES, empty, online=False, today=taken + dt.timedelta(days=30))
    assert "warning" not in capsys.readouterr().out
    audit.check([LOCK], audit.ADVISORIES, empty, online=False, today=taken + dt.timedelta(days=91))
    assert f"warning: the snapshot is older than 90 days: advisories published since {taken}" in capsys.readouterr().out


RECORD = """id: PYSEC-2099-1
summary: A made-up flaw
aliases: [CVE-2099-1]
modified: '2099-01-02T00:00:00Z'
affected:
- package: {name: Jinja2, ecosystem: PyPI}
  ranges:
  - type: ECOSYSTEM
    events: [{introduced: '0'}, {fixed: '99.0'}]
"""


def test_refresh_from_a_tree_and_from_a_zip(tmp_path: Path) -> None:
    """Only the advisories of locked packages are kept, dated; the check then finds them."""
    tree = tmp_path / "advisory-database"
    (tree / "vulns" / "jinja2").mkdir(parents=True)
    (tree / "vulns" / "jinja2" / "PYSEC-2099-1.yaml").write_text(RECORD)
    (tree / "vulns" / "not-ours").mkdir()
    (tree / "vulns" / "not-ours" / "PYSEC-2099-2.yaml").write_text(RECORD.replace("Jinja2", "not-ours"))
    out = tmp_path / "snapshot.json"
    snap = audit.refresh(tree, out, locks=(LOCK,))
    assert [a["id"] for a in snap["advisories"]] == ["PYSEC-2099-1"] and snap["snapshot_date"] == "2099-01-02"
    done = run(LOCK, "--advisories", out, "--ignore", ignore(tmp_path, ""))
    assert done.returncode == 1 and "PYSEC-2099-1 (CVE-2099-1), fixed in 99.0; VULNERABLE" in done.stdout

    import yaml

    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as z:
        z.writestr("PYSEC-2099-1.json", json.dumps(yaml.safe_load(RECORD)))
    snap = audit.refresh(export, out, locks=(LOCK,))
    assert [a["id"] for a in snap["advisories"]] == ["PYSEC-2099-1"] and "all.zip" in snap["source"]


def test_the_snapshot_covers_the_locks() -> None:
    """Both locks' packages are in the committed snapshot (a new dependency wants a refresh)."""
    covered = set(json.loads(audit.ADVISORIES.read_text())["packages"])
    missing = set().union(*(audit.read_lock(p) for p in audit.LOCKS)) - covered
    assert not missing, f"not in deploy/audit-advisories.json: {sorted(missing)}; run deploy/audit.py refresh"
