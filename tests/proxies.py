"""Debian's nginx and Caddy as the tests run them: on loopback, in a throwaway
directory, serving a sample of deploy/ as shipped (only addresses, ports and paths
swapped), with a certificate from simulator.tls when the sample speaks TLS."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def tool(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        pytest.fail(f"{name} is not installed (Debian: apt-get install -y {name}; .ci/run does)")
    return found


def swapped(sample: str, swaps: dict[str, str]) -> str:
    """deploy/`sample` with each key, found exactly once, replaced by its value."""
    text = (DEPLOY / sample).read_text(encoding="utf-8")
    for old, new in swaps.items():
        assert text.count(old) == 1, f"deploy/{sample} no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def wait_until(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def answers(url: str, verify: str | bool = True) -> bool:
    """Whether anything answers at `url` (the environment's CA bundle left out). gunicorn
    listens before its workers have loaded the bot: a request may time out there."""
    with requests.Session() as session:
        session.trust_env = False
        try:
            session.get(url, timeout=2, allow_redirects=False, verify=verify)
        except (requests.ConnectionError, requests.Timeout):
            return False
    return True


class Nginx:
    """Debian's nginx in the throwaway `prefix`, serving `site` (an http-context file)
    inside what /etc/nginx/nginx.conf would give it."""

    def __init__(self, prefix: Path, site: str) -> None:
        self.prefix = prefix
        (prefix / "site.conf").write_text(site, encoding="utf-8")
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(self._main(), encoding="utf-8")
        self.process: subprocess.Popen | None = None

    def _main(self) -> str:
        p = self.prefix
        temp = "\n".join(
            f"    {kind}_temp_path {p / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"pid {p / 'nginx.pid'};\nerror_log {p / 'error.log'} info;\ndaemon off;\n"
            "worker_processes 2;\nevents { worker_connections 512; }\n"
            f"http {{\n{temp}\n    access_log off;\n    include {p / 'site.conf'};\n}}\n"
        )

    def command(self, *extra: str) -> list[str]:
        p = self.prefix
        return [
            tool("nginx"),
            "-p",
            str(p),
            "-c",
            str(self.conf),
            "-e",
            str(p / "error.log"),
            *extra,
        ]

    def start(self, probe: str, verify: str | bool = True) -> None:
        """Run it until `probe` answers."""
        self.process = subprocess.Popen(self.command(), stderr=subprocess.PIPE, text=True)
        wait_until(lambda: answers(probe, verify), "nginx listens")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful shutdown
            self.process.communicate(timeout=15)


class Caddy:
    """Debian's Caddy in the throwaway `prefix`, serving `site` (a Caddyfile without
    global options: its admin endpoint stays off, so several may run at once)."""

    def __init__(self, prefix: Path, site: str) -> None:
        self.caddyfile = prefix / "Caddyfile"
        self.caddyfile.write_text("{\n\tadmin off\n}\n\n" + site, encoding="utf-8")
        self.environ = {**os.environ, "HOME": str(prefix)}
        self.environ |= {"XDG_DATA_HOME": str(prefix / "data"), "XDG_CONFIG_HOME": str(prefix)}
        self.process: subprocess.Popen | None = None

    def start(self, probe: str) -> None:
        """Run it until `probe` answers."""
        command = [tool("caddy"), "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"]
        self.process = subprocess.Popen(
            command, env=self.environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        wait_until(lambda: answers(probe), "caddy listens")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.communicate(timeout=15)
