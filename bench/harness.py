"""What every benchmark here needs: the project's venv, a description of the machine and of the source
being measured, child processes started in a temporary directory and stopped in order (also on
Ctrl-C), free ports and CPU readings from /proc.

Imported by the scripts in bench/ (each puts the repository first on ``sys.path``, so this is
``bench.harness``); not part of the apps.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PERFORMANCE_MD = REPO / "docs" / "performance.md"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(RuntimeError):
    pass


def ensure_venv(script: str, *needs: str, target: str) -> None:
    """Run ``script`` (the bench's ``__file__``) under the project's venv, where the apps' packages are;
    exit with what to do when a module it ``needs`` does not import there."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(script).resolve()), *sys.argv[1:]])
    for module in needs:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            sys.exit(f"bench/{Path(script).name}: {exc}; run `make install` first (then `make {target}`).")


# ── the machine and the source ───────────────────────────────────────────────────────────────────


def _proc_line(path: str, prefix: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line
    return None


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    """What a run's figures depend on: CPUs, their model, memory, kernel, Python, the commit measured
    and the load average before the run (other work on the machine skews the figures)."""
    model = _proc_line("/proc/cpuinfo", "model name")
    mem = _proc_line("/proc/meminfo", "MemTotal:")
    return {"cpus": str(os.cpu_count()),
            "cpu_model": model.split(":", 1)[1].strip() if model else platform.processor() or "?",
            "memory": f"{int(mem.split()[1]) / 1024 / 1024:.1f} GiB" if mem else "?",
            "kernel": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "source": git_describe(), "load_before": load_average()}


# ── child processes ──────────────────────────────────────────────────────────────────────────────


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Processes:
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> Child:
        """Start ``argv`` in ``log``'s directory (a temporary one: the repository's .env and var/ are
        neither read nor written), its output to ``log``, in its own session: a Ctrl-C in the terminal
        reaches only the bench, which then stops the children in order."""
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise BenchError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")

    def stop_all(self) -> None:
        """SIGTERM to each child's process group, newest first; SIGKILL after 15 s."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        self.children.clear()


def wait_ready(procs: Processes, url: str, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200 (an app's ``/readyz``); a child that exits meanwhile, or the
    timeout, is a :class:`BenchError` with the children's last log lines."""
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return
                last = str(resp.status)
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:300].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise BenchError(f"not ready at {url} after {timeout:.0f} s ({last}):\n"
                     + "\n".join(f"--- {c.name}\n{c.tail(10)}" for c in procs.children))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (held open together while chosen, so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ── CPU readings ─────────────────────────────────────────────────────────────────────────────────


def _proc_ticks(pid: int) -> tuple[int, int]:
    """(utime + stime in clock ticks, parent pid) of one process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[11]) + int(fields[12]), int(fields[1])


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time used so far by a process (and, ``with_children``, its children: nginx's worker);
    0 where /proc is absent."""
    try:
        total = _proc_ticks(pid)[0]
        if with_children:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        ticks, ppid = _proc_ticks(int(entry.name))
                    except (OSError, ValueError):
                        continue
                    if ppid == pid:
                        total += ticks
    except (OSError, ValueError):
        return 0.0
    return total / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat), 0 where absent."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS



def git_describe() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"
    return f"{head or '?'}{' + uncommitted changes' if dirty else ''}"


def write_section(heading: str, text: str, *, keep_subsections: bool = False,
                  path: Path = PERFORMANCE_MD) -> None:
    """Replace one section of docs/performance.md (``heading``, with or without a ``(bench/….py)`` after
    it) by ``text``, or add it at the end, leaving the other sections alone. ``keep_subsections``: only
    the part before the section's first ``### `` heading is replaced (subsections written by hand stay)."""
    current = path.read_text() if path.exists() else "# Performance\n"
    end = "^## |^### " if keep_subsections else "^## "
    pattern = re.compile(rf"^{re.escape(heading)}( \(bench/[\w.]+\))?\n.*?(?={end}|\Z)", re.S | re.M)
    block = text.rstrip() + "\n\n"
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip() + "\n\n" + block
    path.write_text(updated.rstrip() + "\n")
