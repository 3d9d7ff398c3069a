"""The message path under load: gunicorn (gthread) driven by wrk, every push
signed and carrying a fresh MsgId, ours against WeRoBot at its fastest.

    .venv/bin/python -m bench.messages [--seconds 30] [--connections 50]
                                       [--workers 2] [--threads 4] [--only ours]

Needs Debian's `wrk` and `gunicorn` (requirements-dev.txt). Prints, per
contender: requests/s, p50, p99, errors, CPU time per request, and each
worker's RSS: at its peak, and before and after the load (sampled every second,
so memory growth under sustained load shows).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from wechat.signature import sign

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchtoken"  # noqa: S105 - a benchmark token
NONCE = "1514711492"

CONTENDERS = {
    "werobot": ("bench.contenders:werobot_bare", "/"),
    "ours": ("bot:app", "/wechat"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signatures(minutes: int) -> str:
    """`ts:sig` for each minute from now on: wrk's Lua cannot sha1."""
    start = int(time.time())
    stamps = [start + 60 * i for i in range(minutes + 1)]
    return ",".join(f"{ts}:{sign(TOKEN, str(ts), NONCE)}" for ts in stamps)


def ours_environ(tmp: Path) -> dict[str, str]:
    config = tmp / "config.toml"
    config.write_text("")
    return {
        "BOT_CONFIG": str(config),
        "BOT_WECHAT_TOKEN": TOKEN,
        "BOT_STORAGE_URL": f"sqlite:///{tmp}/bench.sqlite3",
    }


class Gunicorn:
    def __init__(
        self, app: str, workers: int, threads: int, connections: int, environ: dict[str, str]
    ) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "gunicorn", app,
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--log-level", "warning", "--keep-alive", "5", "--no-control-socket",
            # Workers race for connections and, with keep-alive, one can win nearly all
            # of them: capping each at its share keeps both working.
            "--worker-connections", str(-(-connections // workers)),
        ]  # fmt: skip
        env = {**os.environ, **environ, "BENCH_TOKEN": TOKEN}
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603
        self.peak: dict[int, int] = {}
        self.timeline: list[int] = []  # the largest worker's RSS (KiB), once a second
        self._stop = threading.Event()
        self._wait_ready()
        self.before = {pid: rss_kib(pid) for pid in self.workers()}  # RSS before any load
        self.last: dict[int, int] = {}
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            sizes = {pid: rss_kib(pid) for pid in self.workers()}
            self.last = sizes
            for pid, size in sizes.items():
                self.peak[pid] = max(self.peak.get(pid, 0), size)
            self.timeline.append(max(sizes.values(), default=0))

    def stop(self) -> None:
        self._stop.set()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_wrk(port: int, path: str, seconds: int, connections: int) -> dict:
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_SIGS": signatures(seconds // 60 + 2),
        "BENCH_RUN": str(time.time_ns() // 1000 % 10**6),
    }
    command = [
        "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
        "-s", str(ROOT / "bench" / "push.lua"), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    started = os.times()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)  # noqa: S603
    ended = os.times()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = (ended.children_user - started.children_user) + (
        ended.children_system - started.children_system
    )
    result["wrk_cpu_share"] = cpu / result["seconds"] / (os.cpu_count() or 1)
    return result


def measure(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    app, path = CONTENDERS[name]
    tmp = Path(tempfile.mkdtemp(dir=tmp))  # a database of its own for every run
    environ = ours_environ(tmp) if name == "ours" else {}
    server = Gunicorn(app, args.workers, args.threads, args.connections, environ)
    try:
        workers = server.workers()
        cpu_before = [cpu_seconds(pid) for pid in workers]
        result = run_wrk(server.port, path, args.seconds, args.connections)
        per_worker = [
            cpu_seconds(pid) - before for pid, before in zip(workers, cpu_before, strict=True)
        ]
        cpu = sum(per_worker)
    finally:
        server.stop()
    result["rps"] = result["requests"] / result["seconds"]
    result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    # gunicorn's workers race for connections; with keep-alive one may win most of them
    result["busiest_worker_cpu_share"] = max(per_worker) / cpu if cpu else 0.0
    result["peak_rss_mib"] = [round(kib / 1024, 1) for kib in server.peak.values()]
    result["rss_mib_every_10s"] = [round(kib / 1024) for kib in server.timeline[::10]]
    result["rss_mib_before_after"] = [
        (round(kib / 1024, 1), round(server.last.get(pid, 0) / 1024, 1))
        for pid, kib in server.before.items()
    ]
    return result


def median_run(results: list[dict]) -> dict:
    """The run with the median throughput (its latencies come with it); RSS is the peak of all."""
    ordered = sorted(results, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["peak_rss_mib"] = max((r["peak_rss_mib"] for r in results), key=max)
    chosen["all_rps"] = [round(r["rps"]) for r in results]
    chosen["all_busiest_share"] = [round(r["busiest_worker_cpu_share"], 2) for r in results]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate contenders, report medians"
    )
    parser.add_argument("--only", choices=sorted(CONTENDERS), action="append")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in args.only or CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, results in runs.items():
                results.append(measure(name, args, Path(tmp)))
    results = {name: median_run(results) for name, results in runs.items()}
    print(
        f"{'contender':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'CPU µs/req':>10}  peak RSS MiB"
    )
    for name, r in results.items():
        errors = r["socket_errors"] + r["bad_answers"]
        print(
            f"{name:<10} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {errors:7d} "
            f"{r['cpu_us_per_request']:10.0f}  "
            f"{r['peak_rss_mib']}  (wrk CPU {r['wrk_cpu_share']:.0%}; runs {r['all_rps']}, "
            f"busiest worker's CPU share {r['all_busiest_share']})"
        )
    for name, r in results.items():
        print(f"{name} RSS of the largest worker every 10 s (MiB): {r['rss_mib_every_10s']}")
        print(f"{name} RSS of each worker before → after the load (MiB): ", end="")
        print(", ".join(f"{before} → {after}" for before, after in r["rss_mib_before_after"]))
    if "werobot" in results and "ours" in results:
        print(f"ours / werobot: {results['ours']['rps'] / results['werobot']['rps']:.2f}x")


if __name__ == "__main__":
    main()
