"""A fork server for `python bot.py ARGS`: started once per test process with the
third-party libraries imported (a third of a second of CPU per start otherwise), it
forks one child per request, and the child becomes `python bot.py ARGS`: the request's
stdin, stdout and stderr, environment, working directory and argv are applied first,
then bot.py runs as __main__ and imports every module of the bot afresh. The child
leaves through the interpreter's own exit (exit status, tracebacks, KeyboardInterrupt,
atexit), as `python bot.py` would.

Run as a script, never imported: it must not import the bot nor pytest.
Protocol (one SOCK_SEQPACKET connection per child): the client sends a JSON request
{"argv", "cwd", "env"} with the three descriptors; the server answers the child's pid,
then its wait status once it has ended. The server ends when its stdin closes.
"""

import argparse  # noqa: F401
import contextlib
import difflib  # noqa: F401
import io
import json
import os
import selectors
import signal
import socket
import sqlite3  # noqa: F401
import sys
import time
import zoneinfo  # noqa: F401

# The libraries, not the bot: what `python bot.py` spends its start importing.
import alembic.command  # noqa: F401
import bottle  # noqa: F401
import cryptography.hazmat.primitives.ciphers  # noqa: F401
import lxml.etree  # noqa: F401
import psycopg  # noqa: F401
import requests  # noqa: F401
import sqlalchemy.dialects.postgresql.psycopg
import sqlalchemy.dialects.sqlite
import sqlalchemy.orm  # noqa: F401
import waitress.server  # noqa: F401
import wcwidth  # noqa: F401
import werobot  # noqa: F401


def serve(path: str) -> dict:
    """Answer requests until stdin closes; return, in a child, the request it must run."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    waiting: dict[int, socket.socket] = {}
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(wakeup_read, selectors.EVENT_READ)
    events.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in events.select():
            if key.fileobj is listener:
                request = fork(listener.accept()[0], waiting)
                if request is not None:
                    return request
            elif key.fileobj is sys.stdin:
                reap(waiting)
                sys.exit(0)
            else:
                os.read(wakeup_read, 4096)
                reap(waiting)


def fork(connection: socket.socket, waiting: dict[int, socket.socket]) -> dict | None:
    """Start one child; in the child, put its descriptors in place and return its request."""
    message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    pid = os.fork()
    if pid == 0:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        return json.loads(message)
    for fd in fds:
        os.close(fd)
    connection.send(str(pid).encode())
    waiting[pid] = connection
    return None


def reap(waiting: dict[int, socket.socket]) -> None:
    """Send every ended child's wait status to its client."""
    while waiting:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        with waiting.pop(pid) as connection, contextlib.suppress(OSError):
            connection.send(str(status).encode())  # a client may have gone


def become(request: dict) -> str:
    """Take the request's environment, directory, argv and streams; return bot.py's path."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # the C library read TZ when the server started
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    sys.pycache_prefix = os.environ.get("PYTHONPYCACHEPREFIX")
    script = os.path.abspath(request["argv"][1])
    sys.argv = request["argv"][1:]
    sys.path[0] = os.path.dirname(script)  # the server's own folder (tests/) before
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        like = getattr(sys, name)
        raw = open(fd, "rb" if fd == 0 else "wb", closefd=False)  # noqa: SIM115
        stream = io.TextIOWrapper(
            raw,
            encoding=like.encoding,
            errors=like.errors,
            line_buffering=fd == 2 or (fd == 1 and os.isatty(fd)),
            write_through=unbuffered and fd != 0,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    return script


if __name__ == "__main__":
    import runpy

    bot = become(serve(sys.argv[1]))
    runpy.run_path(bot, run_name="__main__")
