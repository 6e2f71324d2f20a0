"""The extractor pool's workers die with the daemon, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import os, signal, sys
from concurrent.futures import ProcessPoolExecutor
from monitor.daemon import _worker_started
pool = ProcessPoolExecutor(max_workers=2, initializer=_worker_started)
pids = {pool.submit(os.getpid).result() for _ in range(8)}
pids |= {pool.submit(os.getpid).result() for _ in range(8)}
print(" ".join(map(str, sorted(pids))), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's wait is missing


def test_workers_end_when_the_daemon_is_killed(tmp_path):
    out = tmp_path / "pids"
    with out.open("w") as sink:  # a file, not a pipe: lingering workers would hold a pipe open
        code = subprocess.run([sys.executable, "-c", SCRIPT], stdout=sink, timeout=60).returncode
    assert code == -9
    pids = [int(p) for p in out.read_text().split()]
    assert pids  # the workers were started
    try:
        deadline = time.monotonic() + 10
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if _alive(pid)], "workers outlived the daemon"
    finally:
        for pid in filter(_alive, pids):
            os.kill(pid, signal.SIGKILL)
