"""The apps hand the heap's free pages back to the system (common.cli.trim_freed_memory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")

# A heap full of holes: 60 MB in 100 KB blocks (below the mmap threshold `serve` sets, so on the heap),
# every tenth kept, the rest freed. glibc keeps the freed ones resident (only the heap's top goes back on
# its own); trim_freed_memory's thread returns them.
PROGRAM = textwrap.dedent("""
    import time
    from common.cli import return_freed_memory, trim_freed_memory

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    return_freed_memory()
    blocks = [bytearray(b"x" * 100_000) for _ in range(600)]
    kept = blocks[::10]
    del blocks
    before = rss_mb()
    trim_freed_memory(every=0.05)
    time.sleep(0.5)
    print(round(before), round(rss_mb()), len(kept))
""")


def test_freed_heap_pages_go_back_to_the_system():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True)
    before, after, _ = map(int, done.stdout.split())
    assert before - after >= 40, f"RSS {before} MB before the trim, {after} MB after"
