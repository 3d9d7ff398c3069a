"""The production recipe in deploy/, as shipped: Debian's nginx with the sample site
(only addresses, ports and paths swapped) on loopback, with TLS from a certificate
made here, balancing two real gunicorn processes run with deploy/gunicorn.conf.py
on one SQLite file; WeChat (the simulator) pushes through it over https. And the
systemd unit, checked by systemd-analyze."""

from __future__ import annotations

import configparser
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

import routes
from simulator import Simulator
from simulator.tls import self_signed
from tests import proxies
from tests.conftest import ANCHOR, APP_SECRET, ROOT, free_port, new_simulator, write_config
from tests.proxies import DEPLOY, swapped, tool, wait_until

HOST = "bot.example.com"  # the sample's server_name
API_KEY = "0perat0r-k3y-f0r-the-depl0y-test-0f-the-b0t"
# What the sample's access log and the bot's log must never hold: the query strings
# of pushes and callbacks.
QUERY_SECRETS = ("signature=", "msg_signature=", "code=", "state=", "echostr=")


# -- nginx ------------------------------------------------------------------------------


class Nginx(proxies.Nginx):
    """deploy/nginx.conf (swapped in place: loopback ports, the test certificate, the log
    file, the two instances' ports)."""

    def __init__(self, prefix: Path, upstreams: tuple[int, int]) -> None:
        self.https, self.http = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.https}"
        self.cert, key = self_signed(prefix, HOST)
        self.access_log = prefix / "access.log"
        site = swapped(
            "nginx.conf",
            {
                "listen 80;": f"listen 127.0.0.1:{self.http};",
                "listen [::]:80;": "",  # IPv4 loopback only here
                "listen 443 ssl;": f"listen 127.0.0.1:{self.https} ssl;",
                "listen [::]:443 ssl;": "",
                f"/etc/letsencrypt/live/{HOST}/fullchain.pem": str(self.cert),
                f"/etc/letsencrypt/live/{HOST}/privkey.pem": str(key),
                "/var/log/nginx/wechat-bot.access.log": str(self.access_log),
                "127.0.0.1:8001": f"127.0.0.1:{upstreams[0]}",
                "127.0.0.1:8002": f"127.0.0.1:{upstreams[1]}",
            },
        )
        super().__init__(prefix, site)

    def start(self) -> None:
        super().start(f"http://127.0.0.1:{self.http}/")

    def get(self, path: str, **options) -> requests.Response:
        return requests.get(self.url + path, verify=str(self.cert), timeout=15, **options)


# -- the bot under gunicorn ------------------------------------------------------------


class Instance:
    """`gunicorn -c deploy/gunicorn.conf.py bot:app`, started from elsewhere (the config
    file finds the checkout), one worker, its log (stderr) in a file."""

    def __init__(self, home: Path, port: int, environ: dict[str, str]) -> None:
        self.port = port
        self.log = home / f"gunicorn-{port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        command = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*command, "bot:app"],
                cwd=home,
                env={**clean, **environ, "BOT_SERVER_PORT": str(port), "WEB_CONCURRENCY": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        health = f"http://127.0.0.1:{port}{routes.HEALTH}"
        wait_until(lambda: self.process.poll() is None and proxies.answers(health), f"{port} is up")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def requests_logged(self, at_least: int = 0, starting: str = "") -> list[str]:
        """The request lines of its log starting with `starting`, once there are
        `at_least` of them (each is written just after its response went out)."""

        def lines() -> list[str]:
            found = re.findall(r"INFO bot\.request: (.+)", self.log.read_text(encoding="utf-8"))
            return [line for line in found if line.startswith(starting)]

        wait_until(lambda: len(lines()) >= at_least, f"{at_least} lines {starting!r}")
        return lines()


class Stack:
    """WeChat, nginx and two instances of the bot."""

    def __init__(self, home: Path, running: ExitStack) -> None:
        self.sim: Simulator = new_simulator()
        running.callback(self.sim.stop)
        ports = (free_port(), free_port())
        self.nginx = Nginx(home, ports)
        config = write_config(home / "config.toml", ports[0], self.sim.url)
        environ = {
            "BOT_CONFIG": str(config),
            "BOT_SERVER_PUBLIC_URL": self.nginx.url,
            "BOT_SERVER_API_KEY": API_KEY,
        }
        self.instances = []
        for port in ports:
            self.instances.append(Instance(home, port, environ))
            running.callback(self.instances[-1].stop)
        self.nginx.start()
        running.callback(self.nginx.stop)
        self.sim.bot_url = self.nginx.url + "/wechat"
        self.sim.trusted_ca = str(self.nginx.cert)  # WeChat checks the certificate

    def push(self, content: str = "你好") -> dict:
        answer = self.sim.push(self.sim.default_openid, type="text", content=content)
        assert answer["status"] == 200, answer
        assert answer["attempts"] == 1
        assert ANCHOR.search(answer["reply"]["Content"])
        return answer

    def access_log(self, at_least: int = 0) -> list[str]:
        """nginx's access log, once it has `at_least` lines (nginx writes each after its
        response went out, so a client may see the answer first)."""

        def lines() -> list[str]:
            return self.nginx.access_log.read_text(encoding="utf-8").splitlines()

        wait_until(lambda: len(lines()) >= at_least, f"{at_least} lines in the access log")
        return lines()

    def upstreams(self, since: int, count: int) -> Counter:
        """How many of the `count` requests logged after line `since` each instance answered."""
        lines = self.access_log(since + count)[since:]
        return Counter(int(port) for port in re.findall(r" 127\.0\.0\.1:(\d+) ", "\n".join(lines)))


@pytest.fixture(scope="session")  # once per xdist worker, whatever runs in between
def stack(tmp_path_factory) -> Iterator[Stack]:
    with ExitStack() as running:
        yield Stack(tmp_path_factory.mktemp("deploy"), running)


@pytest.fixture
def fresh_stack(tmp_path) -> Iterator[Stack]:
    with ExitStack() as running:
        yield Stack(tmp_path, running)


# -- the tests --------------------------------------------------------------------------


def test_the_nginx_sample_passes_nginx_t(tmp_path):
    nginx = Nginx(tmp_path, (free_port(), free_port()))
    checked = subprocess.run(nginx.command("-t"), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
    assert "warn" not in checked.stderr


def test_pushes_through_nginx_reach_both_instances(stack):
    logged = len(stack.access_log())
    for number in range(8):
        stack.push(f"第{number}条")
    ports = [instance.port for instance in stack.instances]
    assert set(stack.upstreams(logged, 8)) == set(ports)
    for instance in stack.instances:
        assert "POST /wechat 200" in " ".join(instance.requests_logged(1, "POST /wechat"))


def test_a_follower_signs_in_through_nginx(stack):
    link = ANCHOR.search(stack.push()["reply"]["Content"]).group(1).replace("&amp;", "&")
    location = stack.sim.authorize(link, openid=stack.sim.default_openid).location
    assert location.startswith(f"{stack.nginx.url}{routes.CALLBACK}?")
    browser = requests.Session()
    browser.trust_env = False  # REQUESTS_CA_BUNDLE would win over `verify`
    browser.verify = str(stack.nginx.cert)
    landed = browser.get(location, allow_redirects=False, timeout=15)
    assert landed.status_code == 303 and landed.headers["Location"] == routes.ME
    assert "Secure" in landed.headers["Set-Cookie"]  # public_url is https
    nickname = stack.sim.followers[stack.sim.default_openid].nickname
    for _ in range(4):  # whichever instance answers knows the follower
        me = browser.get(stack.nginx.url + routes.ME, timeout=15)
        assert me.status_code == 200 and nickname in me.text


def test_healthz_and_plain_http_sent_to_https(stack):
    health = stack.nginx.get(routes.HEALTH)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    plain = requests.get(
        f"http://127.0.0.1:{stack.nginx.http}/me?x=1", allow_redirects=False, timeout=10
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://{HOST}/me?x=1"


def test_a_body_over_the_limit_is_refused_by_nginx(stack):
    answer = requests.post(
        stack.sim.bot_url, data=b"x" * 100_000, verify=str(stack.nginx.cert), timeout=10
    )
    assert answer.status_code == 413


def test_the_basic_token_is_fetched_once_for_both_processes(stack):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    logged = len(stack.access_log())
    answers = [stack.nginx.get(routes.ACCESS_TOKEN, headers=headers) for _ in range(6)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["access_token"] for a in answers}) == 1
    assert stack.sim.calls.paths().count("/cgi-bin/stable_token") == 1
    both = {instance.port for instance in stack.instances}
    assert set(stack.upstreams(logged, 6)) == both  # both processes were asked
    assert stack.nginx.get(routes.ACCESS_TOKEN).status_code == 401


def test_no_log_holds_a_query_or_a_secret(stack):
    logged = len(stack.access_log())
    stack.push()
    logs = {"nginx access log": "\n".join(stack.access_log(logged + 1))}
    logs |= {f"instance {i.port}": i.log.read_text(encoding="utf-8") for i in stack.instances}
    assert "POST /wechat" in logs["nginx access log"]
    secrets = [*QUERY_SECRETS, APP_SECRET, API_KEY, *stack.sim.oauth._access]
    secrets += list(stack.sim.basic_tokens._expiry)
    leaks = [(name, s[:12]) for name, text in logs.items() for s in secrets if s in text]
    assert leaks == []
    for instance in stack.instances:
        assert "Traceback" not in logs[f"instance {instance.port}"]


def test_pushes_are_answered_while_an_instance_is_down(fresh_stack):
    fresh_stack.push()
    down, up = fresh_stack.instances
    down.stop()
    for _ in range(6):  # nginx hands each push the other instance: WeChat sees no failure
        fresh_stack.push()
    assert fresh_stack.nginx.get(routes.HEALTH).status_code == 200
    assert down.process.returncode == 0
    assert len(up.requests_logged(6, "POST /wechat 200")) >= 6


# -- gunicorn's config ---------------------------------------------------------------------


def test_the_gunicorn_config_refuses_a_bad_configuration_in_one_line_each(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ = {**clean, "BOT_SERVER_PORT": "eighty", "BOT_WECHAT_TOKEN": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"), "bot:app"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("config error: ") for line in lines), lines
    assert "Traceback" not in done.stderr


# -- the systemd unit ------------------------------------------------------------------------


def test_the_systemd_unit_runs_gunicorn_with_the_config_and_keeps_secrets_out():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keys are case-sensitive
    unit.read(DEPLOY / "wechat-bot.service", encoding="utf-8")
    service = unit["Service"]
    assert service["ExecStart"].endswith("gunicorn -c deploy/gunicorn.conf.py bot:app")
    assert service["EnvironmentFile"] == "/etc/wechat-bot/env"
    assert service["User"] == "wechat-bot" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["StateDirectory"] == "wechat-bot"
    text = (DEPLOY / "wechat-bot.service").read_text(encoding="utf-8")
    assert not re.search(r"^Environment=BOT_WECHAT_APP_SECRET", text, re.MULTILINE)


def test_systemd_analyze_finds_nothing_and_rates_the_hardening(tmp_path):
    """The unit with the checkout's paths (verify checks that ExecStart exists)."""
    unit = tmp_path / "wechat-bot.service"
    text = (DEPLOY / "wechat-bot.service").read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/wechat-bot", str(ROOT)), encoding="utf-8")
    analyze = tool("systemd-analyze")
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", verified.stderr
    rated = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rated.returncode == 0, rated.stdout[-400:]  # exposure 2.0 at most, of 10
