"""Process-level behaviour of long runs: a stopped benchmark leaves no child process behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import subprocess, sys, tempfile
from pathlib import Path
from molft.runtime import exit_on_terminate
exit_on_terminate()
with tempfile.TemporaryDirectory() as folder:
    Path(sys.argv[1]).write_text(folder)
    subprocess.run([sys.executable, "-c", "import time; time.sleep(60)"])  # a stand-in for `chemprop train`
"""


def _children(pid: int) -> list[str]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return found.stdout.split()


def test_terminating_a_run_kills_its_child_process_and_removes_its_temporary_folder(tmp_path: Path) -> None:
    marker = tmp_path / "folder.txt"
    run = subprocess.Popen([sys.executable, "-c", SCRIPT, str(marker)])
    deadline = time.monotonic() + 60
    while not _children(run.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    children = _children(run.pid)
    assert children, "the child process did not start"

    run.terminate()
    assert run.wait(timeout=30) == 143
    for child in children:  # the orphan check: the child is gone too, not reparented and still sleeping
        assert subprocess.run(["kill", "-0", child], capture_output=True).returncode != 0
    assert not Path(marker.read_text()).exists()


def _sleep_forever() -> None:
    time.sleep(600)


def test_a_process_forked_after_exit_on_terminate_still_dies_of_sigterm() -> None:
    import multiprocessing
    import signal

    from molft.runtime import exit_on_terminate

    previous = signal.getsignal(signal.SIGTERM)
    exit_on_terminate()  # as a benchmark's start() does in its own process
    try:
        worker = multiprocessing.get_context("fork").Process(target=_sleep_forever)
        worker.start()
        worker.terminate()  # what Pool.terminate() sends its workers
        worker.join(timeout=30)
        assert worker.exitcode == -signal.SIGTERM  # killed by the signal, not SystemExit(143) in the worker
    finally:
        signal.signal(signal.SIGTERM, previous)
