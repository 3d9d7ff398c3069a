"""The machinery every scenario shares: a WSGI app under gunicorn, wrk driving it,
and one Row per measured run.

    app = App("bot:app", environ={"BOT_WECHAT_TOKEN": "..."})
    row = measure(Load("messages", "plaintext", "ours", app, SCRIPT, {"X": "1"}), options)

`measure` starts gunicorn (gthread, `options.workers` × `options.threads`, each worker
capped at its share of the connections), runs wrk with `options.connections`
connections and `options.wrk_threads` threads for `options.seconds`, and returns
throughput and latencies as wrk saw them, errors (socket errors, non-200s, answers the
script's `accept` refused), the largest worker's peak RSS (the kernel's VmHWM), the
workers' CPU time per request and wrk's own CPU share. `interleave` runs several loads in
alternating rounds and keeps each one's median round.

wrk scripts: `bench/wrk.lua` (setup, response, done) is put in front of the scenario's
script, which defines `request()` (wrk's) and may define `accept(status, body)` (default:
status 200) and count `exhausted` when it has no request left to send. The thread's
number (1, 2, …) is the global `thread_id` in `init`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Options, Row, median

ROOT = Path(__file__).resolve().parent.parent
COMMON_LUA = Path(__file__).with_name("wrk.lua")
READY_HOOK = Path(__file__).with_name("gunicorn_ready.py")
STOP_GRACE = 10  # seconds a server may take to stop after SIGTERM


class LoadGeneratorRanOut(RuntimeError):
    """wrk's script had no request left to send before the time was up; `rps` is the
    rate the server answered at, what it was sent once the requests ran out included."""

    def __init__(self, contender: str, missing: int, rps: float) -> None:
        super().__init__(f"{contender}: {missing} requests missing")
        self.rps = rps


@dataclass
class App:
    """A WSGI app for gunicorn: its `module:name`, environment, working directory
    (None: the project root; the project stays importable from anywhere)."""

    spec: str
    environ: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class Load:
    """One measured run: which app, driven by which wrk script with which environment."""

    scenario: str
    mode: str
    contender: str
    app: App
    script: Path
    environ: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # e.g. write fresh requests, before the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn APP` with gthread workers on a free loopback port, until `stop()`."""

    def __init__(self, app: App, options: Options) -> None:
        # gunicorn inherits a socket bound here: no other process can take its port
        # between choosing it and gunicorn binding it (a client's ephemeral port, say)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            self.port = listener.getsockname()[1]
            self._start(app, options, listener.fileno())
        try:
            self._wait_ready(options.workers)
        except BaseException:
            self.stop()
            raise

    def _start(self, app: App, options: Options, fd: int) -> None:
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "gunicorn", app.spec, "--pythonpath", str(ROOT),
            "--bind", f"fd://{fd}", "--workers", str(options.workers),
            "--worker-class", "gthread", "--threads", str(options.threads),
            "--log-level", "warning", "--keep-alive", "5", "--no-control-socket",
            # Workers race for connections and, with keep-alive, one can win nearly all
            # of them: capping each at its share keeps every worker working.
            "--worker-connections", str(-(-options.connections // options.workers)),
            "--config", str(READY_HOOK),
        ]  # fmt: skip
        self.ready = Path(tempfile.mkdtemp(prefix="ready-", dir=options.workdir))
        # the server's own output (a contender's tracebacks, say) goes to a file
        self.log = self.ready / "gunicorn.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, cwd=app.cwd or ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **app.environ, "BENCH_READY_DIR": str(self.ready)},
                pass_fds=(fd,),
            )  # fmt: skip

    def _wait_ready(self, workers: int) -> None:
        """Until every worker has loaded its app (bench/gunicorn_ready.py says so)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{tail}")
            pids = self.workers()
            if len(pids) == workers and all((self.ready / str(pid)).exists() for pid in pids):
                return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start:\n{self.log.read_text()[-2000:]}")

    def workers(self) -> list[int]:
        """The worker processes' ids."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        """SIGTERM; a server still busy after STOP_GRACE (WeRoBot's defaults, stuck on
        SQLite's lock) is killed, workers first."""
        if self.process.poll() is None:
            workers = self.workers()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                for pid in [*workers, self.process.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> dict[str, float]:
    """A process's memory in MiB: VmHWM (the largest resident set it has had), VmRSS
    (now) split into RssAnon, RssFile and RssShmem, and Pss (its proportional share:
    a page N workers map, such as a shared table or the libraries, counts 1/N)."""
    fields = {}
    for name, keys in (("status", ("VmHWM", "VmRSS", "Rss")), ("smaps_rollup", ("Pss:",))):
        try:
            lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
        except OSError:
            return {}
        fields.update(line.split(":", 1) for line in lines if line.startswith(keys))
    return {name: round(int(value.split()[0]) / 1024, 1) for name, value in fields.items()}


def wrk(url: str, script: Path, options: Options, environ: dict[str, str]) -> dict:
    """Run wrk with `bench/wrk.lua` + `script`: the JSON `done()` prints, plus
    `cpu_seconds`, wrk's own user + system time."""
    with tempfile.TemporaryDirectory(dir=options.workdir) as tmp:
        combined = Path(tmp) / "script.lua"
        combined.write_text(COMMON_LUA.read_text() + "\n" + script.read_text())
        out = Path(tmp) / "out"
        command = [
            "wrk", "-t", str(options.wrk_threads), "-c", str(options.connections),
            "-d", f"{options.seconds:g}s", "--timeout", "10s", "--latency",
            "-s", str(combined), url,
        ]  # fmt: skip
        with out.open("w") as stdout:
            process = subprocess.Popen(  # noqa: S603
                command, stdout=stdout, env={**os.environ, **environ}
            )
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"wrk exited with status {process.returncode}")
        result = json.loads(out.read_text().strip().splitlines()[-1])
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def measure(load: Load, options: Options) -> Row:
    """One run of `load`: a fresh gunicorn, wrk for `options.seconds`, then the figures."""
    if load.prepare:
        load.prepare()
    with Gunicorn(load.app, options) as server:
        workers = server.workers()
        before = [cpu_seconds(pid) for pid in workers]
        loaded = [memory_mib(pid).get("VmRSS", 0.0) for pid in workers]  # before the load
        result = wrk(server.url, load.script, options, load.environ)
        used = [cpu_seconds(pid) - start for pid, start in zip(workers, before, strict=True)]
        memory = max((memory_mib(pid) for pid in workers), key=lambda m: m.get("VmHWM", 0))
        logged = server.log.read_text().count("\n")
    seconds, count = result["seconds"], max(result["requests"], 1)
    if result["exhausted"]:
        raise LoadGeneratorRanOut(load.contender, result["exhausted"], count / seconds)
    return Row(
        load.scenario, load.mode, load.contender,
        rps=result["requests"] / seconds, p50_ms=result["p50_ms"], p99_ms=result["p99_ms"],
        errors=result["socket_errors"] + result["bad_answers"],
        peak_rss_mib=memory.get("VmHWM", 0.0),
        load_generator_cpu_share=result["cpu_seconds"] / seconds / (os.cpu_count() or 1),
        extras={
            "requests": result["requests"],
            "p90_ms": result["p90_ms"],
            "max_ms": result["max_ms"],
            "cpu_us_per_request": sum(used) / count * 1e6,
            # a worker winning most connections shows here (1/workers when even)
            "busiest_worker_cpu_share": max(used) / sum(used) if sum(used) else 0.0,
            "server_log_lines": logged,  # e.g. tracebacks a contender wrote under load
            "largest_worker_memory_mib": memory,
            "workers_rss_before_load_mib": loaded,
        },
    )  # fmt: skip


def interleave(loads: list[Load], options: Options, run: Callable = measure) -> list[Row]:
    """Every load once per round, in the same order each round (so a noisy neighbour
    hits all contenders alike); one median Row per load."""
    rounds: list[list[Row]] = [[] for _ in loads]
    for _ in range(options.rounds):
        for load, rows in zip(loads, rounds, strict=True):
            rows.append(run(load, options))
    return [median(rows) for rows in rounds]
