"""Work for the tests that need several processes at once (workers claiming, instances
migrating together), and the context that starts those processes.

The processes come from a fork server that has imported this module, and with it the
store, once: each one starts in milliseconds, already separate (its own connections,
its own memory). A spawned process would import the test module instead, and through
it the whole bot and pytest: a second of CPU each, six at a time.

This module imports the store and nothing of the tests', so that the server stays small.
"""

from __future__ import annotations

import atexit
import functools
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.context import BaseContext
from pathlib import Path

from storage import DeliveryLedger, Store
from storage.deliveries import delivery_id


def context() -> BaseContext:
    """Where to start the processes: the fork server, with the store imported."""
    started = multiprocessing.get_context("forkserver")
    started.set_forkserver_preload([__name__])
    return started


def new_ledger(url: str, shared_memory: bool = True) -> DeliveryLedger:
    """With SQLite, claims in shared memory (the default) or in the database."""
    return DeliveryLedger(Store.from_url(url).engine, shared_memory)


def claim_all(url: str, shared_memory: bool, keys: list[str], barrier, results) -> None:
    """Claim every delivery of `keys` at once with the others; put those this one won."""
    mine = new_ledger(url, shared_memory)
    barrier.wait(timeout=60)  # a worker that failed to start must not hang the rest
    now = int(time.time())
    results.put([key for key in keys if mine.claim(delivery_id(key), now) is None])


def open_ledger(url: str, barrier, results) -> None:
    """Open the ledger beside the store at once with the others; put one claim's outcome."""
    store = Store.from_url(url)
    barrier.wait(timeout=60)
    opened = DeliveryLedger.beside(store.engine)
    results.put(opened.claim(7, int(time.time())))


def claim_state(url: str, barrier, results) -> None:
    """Claim one state at once with the others; put what the claim found."""
    store = Store.from_url(url)
    barrier.wait(timeout=60)
    results.put(store.claim_state("p" * 64, "h", int(time.time()) + 600, 120)[0].value)


def open_store(url: str, barrier, results) -> None:
    """Open the store (migrating it) at once with the others; put the steps this one
    applied, or the error."""
    try:
        barrier.wait(timeout=60)
        results.put(Store.from_url(url).migrated.applied)
    except Exception as exc:  # the test reads it from the queue
        results.put(f"{type(exc).__name__}: {exc}")


# -- `python bot.py ARGS`, forked from a server with the libraries imported ---------------

_SERVER = Path(__file__).with_name("forkserver.py")


class _ForkServer:
    """tests/forkserver.py, started on first use and ended with this process."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="bot-forkserver-")
        self.path = os.path.join(self.folder.name, "socket")
        self.process = subprocess.Popen(
            [sys.executable, str(_SERVER), self.path],
            stdin=subprocess.PIPE,  # the server ends when this closes
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline() == "ready\n", "the fork server did not start"
        atexit.register(self.stop)

    def stop(self) -> None:
        """End the server, and wait for it: its children's CPU then counts as ours."""
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.folder.cleanup()

    def start(self, argv: list[str], cwd: str, env: dict[str, str], fds: list[int]):
        """Fork `argv` (python, bot.py, ARGS) with these stdin, stdout and stderr;
        return the connection its wait status comes on, and its pid."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        connection.connect(self.path)
        request = {"argv": argv, "cwd": cwd, "env": env}
        socket.send_fds(connection, [json.dumps(request).encode()], fds)
        return connection, int(connection.recv(64))


@functools.cache
def _fork_server() -> _ForkServer:
    return _ForkServer()


class BotProcess(subprocess.Popen):
    """`subprocess.Popen([sys.executable, "bot.py", ARGS], ...)`, the same in every way
    (its own pid, streams, environment, directory, exit status and signals) but forked
    from the fork server: only the bot's own modules are imported at its start."""

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env,
                       startupinfo, creationflags, shell, p2cread, p2cwrite, c2pread,
                       c2pwrite, errread, errwrite, *_) -> None:  # fmt: skip
        fds = [p2cread, c2pwrite, errwrite]
        fds = [fd if fd != -1 else default for default, fd in enumerate(fds)]
        environ = dict(os.environ if env is None else env)
        self._status, self.pid = _fork_server().start(
            [os.fsdecode(arg) for arg in args], os.fspath(cwd or os.getcwd()), environ, fds
        )
        self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        """The wait status the server sends, as os.waitpid would answer it."""
        self._status.setblocking(not wait_flags & os.WNOHANG)
        try:
            status = self._status.recv(64)
        except BlockingIOError:
            return 0, 0
        self._status.close()
        return self.pid, int(status)

    def _internal_poll(self, _deadstate: int | None = None, **_) -> int | None:
        if self.returncode is None and self._waitpid_lock.acquire(False):
            try:
                if self.returncode is None:
                    pid, status = self._try_wait(os.WNOHANG)
                    if pid:
                        self._handle_exitstatus(status)
            finally:
                self._waitpid_lock.release()
        return self.returncode


def run_bot(
    args: list[str], timeout: float | None = None, **options
) -> subprocess.CompletedProcess:
    """subprocess.run for a BotProcess (`input` and `check` aside)."""
    if options.pop("capture_output", False):
        options.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with BotProcess(args, **options) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
