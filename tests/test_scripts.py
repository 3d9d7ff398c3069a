"""scripts/bootstrap.sh, shared by ./scripts/run and ./scripts/test: started at the
same moment on a fresh clone, they take turns at making .venv and installing into it,
instead of doing both at once. Run against a copy of the scripts in a temporary
directory, with requirements that install nothing."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

LOCK = ".bootstrap.lock"


def fresh_copy(where: Path) -> Path:
    (where / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", where / "scripts")
    (where / "requirements.txt").write_text("# nothing to install\n", "utf-8")
    (where / "requirements-dev.txt").write_text("-r requirements.txt\n", "utf-8")
    return where


def bootstrap(copy: Path, requirements: str) -> subprocess.Popen:
    """What ./scripts/run (requirements.txt) and ./scripts/test (-dev) do first."""
    return subprocess.Popen(
        ["bash", "-c", f"source scripts/bootstrap.sh && bootstrap {requirements}"],
        cwd=copy,
        env={**os.environ, "PYTHON": sys.executable},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr


def test_run_and_test_started_together_on_a_fresh_clone_both_succeed(tmp_path):
    copy = fresh_copy(tmp_path)
    together = [bootstrap(copy, "requirements.txt"), bootstrap(copy, "requirements-dev.txt")]
    for process in together:
        finish(process)
    venv = subprocess.run(
        [copy / ".venv" / "bin" / "python", "-c", "import sys, pip; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(venv.stdout.strip()) == copy / ".venv"
    assert (copy / ".venv" / ".installed-requirements.txt").exists()
    assert (copy / ".venv" / ".installed-requirements-dev.txt").exists()


def test_a_bootstrap_waits_while_another_holds_the_lock(tmp_path):
    copy = fresh_copy(tmp_path)
    # An installed .venv (made quickly, without pip): the waiting bootstrap has nothing to do.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", copy / ".venv"], check=True)
    (copy / ".venv" / ".installed-requirements.txt").touch()
    with open(copy / LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another bootstrap at work
        waiting = bootstrap(copy, "requirements.txt")
        _wait_until_blocked_on(copy / LOCK)
        assert waiting.poll() is None
    finish(waiting)  # the lock released, it went on


def _wait_until_blocked_on(lock: Path) -> None:
    """Until /proc/locks shows a process waiting (`->`) for a flock on `lock`."""
    marker = f":{lock.stat().st_ino} "
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        table = Path("/proc/locks").read_text()
        if any("->" in line and "FLOCK" in line and marker in line for line in table.splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError("no bootstrap waited for the lock")


def test_the_lock_file_is_ignored_by_git():
    done = subprocess.run(["git", "check-ignore", "-q", LOCK], cwd=ROOT, check=False)
    assert done.returncode == 0
