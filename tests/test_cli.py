"""The command line, run as operators run it: `python bot.py ...` in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest
import requests
import wcwidth

from tests import processes
from tests.conftest import APP_ID, APP_SECRET, ROOT, TOKEN, Follower, free_port, write_config


def run(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    return processes.run_bot(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def config_path(tmp_path, sim):
    return write_config(tmp_path / "config.toml", free_port(), sim.url)


def test_check_prints_what_to_paste(config_path):
    done = run("--config", str(config_path), "check")
    assert done.returncode == 0, done.stderr
    assert "/wechat" in done.stdout
    assert TOKEN in done.stdout
    assert "网页授权回调域名" in done.stdout and "127.0.0.1" in done.stdout
    assert APP_SECRET not in done.stdout + done.stderr


def test_check_names_the_js_api_domains_the_bot_signs_pages_of(config_path):
    env = {"BOT_OAUTH_RETURN_HOSTS": "shop.example.com,m.example.com"}
    done = run("--config", str(config_path), "check", env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"JS接口安全域名 \(JS API domains\): +127\.0\.0\.1, shop\.example\.com, m\.example\.com\n",
        done.stdout,
    )


def test_check_says_whether_the_internal_api_is_on_never_its_key(config_path):
    assert (
        "internal API (/api/access-token): off" in run("--config", str(config_path), "check").stdout
    )
    key = "0123456789abcdef" * 4
    done = run("--config", str(config_path), "check", env={"BOT_SERVER_API_KEY": key})
    assert done.returncode == 0, done.stderr
    assert "internal API (/api/access-token): on" in done.stdout
    assert key not in done.stdout + done.stderr


def test_bad_configuration_exits_2_with_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[wechat]\ntoken = "x"\napp_id = "nope"\n[oauth]\nscope = "snsapi_all"\n', "utf-8"
    )
    done = run("--config", str(bad), "check", env={"BOT_SERVER_PORT": "eighty"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    for key in ("wechat.token", "wechat.app_id", "server.port (BOT_SERVER_PORT)", "oauth.scope"):
        assert any(key in line for line in lines), (key, lines)
    assert len(lines) == 4


def test_environment_wins_over_the_file(config_path):
    done = run("--config", str(config_path), "check", env={"BOT_WECHAT_TOKEN": "fromenvironment"})
    assert "fromenvironment" in done.stdout


def test_missing_config_file_is_a_clear_error(tmp_path):
    done = run("--config", str(tmp_path / "nope.toml"), "check")
    assert done.returncode == 2
    assert "not found" in done.stderr


def test_not_toml_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[wechat\n", "utf-8")
    done = run("--config", str(broken), "check")
    assert done.returncode == 2
    assert "not valid TOML" in done.stderr


def test_authorize_url(config_path):
    done = run("--config", str(config_path), "authorize-url", "--scope", "snsapi_base")
    assert done.returncode == 0
    assert re.fullmatch(
        rf"http://127\.0\.0\.1:\d+/connect/oauth2/authorize\?appid={APP_ID}&redirect_uri=http%3A%2F%2F127\.0\.0\.1"
        r"%3A\d+%2Foauth%2Fcallback&response_type=code&scope=snsapi_base&state=[0-9a-f]{64}#wechat_redirect\n",
        done.stdout,
    )
    assert "WARNING" not in done.stderr  # a real account's credentials


def sandbox_config(tmp_path: Path) -> Path:
    """The shipped config.toml's sandbox account, with a database of the test's own."""
    path = tmp_path / "sandbox.toml"
    path.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "bot.sqlite3"}"\n', "utf-8")
    return path


def test_authorize_url_on_the_sandbox_account_warns_as_serve_does(tmp_path):
    done = run("--config", str(sandbox_config(tmp_path)), "authorize-url")
    assert done.returncode == 0, done.stderr
    assert "NOT configured for a real WeChat official account" in done.stderr
    (link,) = done.stdout.splitlines()  # the warning stays out of what scripts read
    assert link.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxsandbox")


def test_gunicorn_on_the_sandbox_account_warns_in_its_log(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "bot:app", "--bind", f"127.0.0.1:{port}"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ["BOT_CONFIG"] = str(sandbox_config(tmp_path))
    process = subprocess.Popen(command, cwd=ROOT, env=environ, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "NOT configured for a real WeChat official account" in stderr
    assert "sandboxsecret" not in stderr


def test_users_lists_followers_with_secrets_masked(sim, start_bot):
    bot = start_bot()
    follower = Follower(sim, bot, sim.default_openid)
    assert follower.authorize().status_code == 303
    stored = bot.app.store.get_follower(follower.openid)
    done = run("--config", str(bot.config.source), "users")
    assert done.returncode == 0, done.stderr
    assert follower.openid in done.stdout
    assert sim.followers[follower.openid].nickname in done.stdout
    assert stored.access_token not in done.stdout
    assert stored.refresh_token not in done.stdout
    assert "1 follower(s)" in done.stdout


NICKNAMES = ("Ａlice·王", "<b>熊猫</b>&🐼", "👨‍👩‍👧一家", "老王" * 20, "\x1b[31m红\u202e字\n")


def cell_start(row: str, number: int) -> int:
    """Where the row's cell `number` (from 0; cells are parted by 2+ spaces) starts:
    found in order, so a value that also occurs inside an earlier cell (a token
    holding "ok") is not mistaken for it."""
    position = 0
    for cell in re.split(r"\s{2,}", row)[: number + 1]:
        position = row.index(cell, position)
        start, position = position, position + len(cell)
    return start


def test_users_lines_up_chinese_and_emoji_nicknames_and_says_the_time_zone(sim, start_bot):
    bot = start_bot()
    for nickname in NICKNAMES:
        openid = sim.add_follower(nickname).openid
        assert Follower(sim, bot, openid).authorize().status_code == 303
    done = run("--config", str(bot.config.source), "users", env={"TZ": "CST-8"})
    assert done.returncode == 0, done.stderr
    header, *rows, total = done.stdout.splitlines()
    assert total == f"{len(NICKNAMES)} follower(s)" and len(rows) == len(NICKNAMES)
    # Every column starts at the same display column (CJK and emoji count two).
    columns = ("scope", "access token", "token expires", "status")
    for number, column in enumerate(columns, start=2):
        starts = {wcwidth.width(header[: header.index(column)])}
        for row in rows:
            starts.add(wcwidth.width(row[: cell_start(row, number)]))
        assert len(starts) == 1, (column, done.stdout)
    assert all(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\+08:00", row) for row in rows)
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout  # nothing reaches the terminal
    assert "?[31m红?字?" in done.stdout
    assert "老王" * 5 + "老…  " in done.stdout  # cut at 24 columns


def test_serve_runs_a_real_server_and_warns_about_sandbox(tmp_path):
    port = free_port()
    env = {
        "BOT_SERVER_PORT": str(port),
        "BOT_STORAGE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
    }
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    process = processes.BotProcess(
        [sys.executable, "bot.py", "serve"],
        cwd=ROOT,
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = _wait_for(f"http://127.0.0.1:{port}/healthz")
        assert answer.status_code == 200
        assert (
            "waitress" in answer.headers.get("Server", "")
            or answer.headers.get("Server") == "oauth-bot"
        )
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "NOT configured for a real WeChat official account" in stderr
    assert "sandboxsecret" not in stderr


def _wait_for(url: str) -> requests.Response:
    """The first answer of a server starting up. gunicorn listens before its worker has
    loaded the bot, so a request may also wait there (a timeout), not only be refused."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return requests.get(url, timeout=2)
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_bot_app_is_the_wsgi_entry_point(config_path):
    code = "import bot; print(type(bot.app).__name__, callable(bot.app))"
    env = {**os.environ, "BOT_CONFIG": str(config_path), "BOT_SERVER_PROT": "8080"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip() == "Bot True", done.stderr
    # What gunicorn's operator sees: the misspelt variable is logged, not ignored.
    assert "BOT_SERVER_PROT: matches no configuration key" in done.stderr
    assert "did you mean BOT_SERVER_PORT?" in done.stderr


def test_a_worker_in_plaintext_mode_loads_no_command_line_crypto_or_alembic(config_path):
    """What gunicorn's workers import: the command line (waitress), AES (cryptography)
    and migrations (alembic, once the database is up to date) cost each about 2 to
    8 MiB, and a plaintext bot's worker needs none of them."""
    env = {**os.environ, "BOT_CONFIG": str(config_path)}
    code = (
        "import sys, bot; bot.app; "
        "print(sorted({'cli', 'waitress', 'cryptography', 'alembic'} & set(sys.modules)))"
    )
    opened = [
        subprocess.run(  # the first migrates the new database, the second finds it done
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [done.stdout.strip() for done in opened] == ["['alembic']", "[]"], opened


@pytest.fixture
def taken_port():
    """A port some other process already listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def assert_one_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "WARNING" not in line.upper()]
    (line,) = [line for line in lines if all(word in line for word in words)]
    assert line.startswith("error: ") or line.startswith("storage error"), line


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path, sim, taken_port):
    config = write_config(tmp_path / "config.toml", taken_port, sim.url)
    done = run("--config", str(config), "serve")
    assert_one_line(done, f"127.0.0.1:{taken_port}", "server.port", "already in use")


def test_sandbox_on_a_port_in_use_says_so_in_one_line(config_path, taken_port):
    ports = ("--port", str(taken_port), "--simulator-port", str(free_port()))
    done = run("--config", str(config_path), "sandbox", *ports)
    assert_one_line(done, f"127.0.0.1:{taken_port}", "--port", "already in use")


def test_sandbox_with_the_simulator_port_in_use_says_so_in_one_line(config_path, taken_port):
    ports = ("--port", str(free_port()), "--simulator-port", str(taken_port))
    done = run("--config", str(config_path), "sandbox", *ports)
    assert_one_line(done, f"127.0.0.1:{taken_port}", "--simulator-port", "already in use")


def test_sandbox_on_one_port_for_both_says_so_in_one_line(config_path):
    port = str(free_port())
    done = run("--config", str(config_path), "sandbox", "--port", port, "--simulator-port", port)
    assert_one_line(done, "--port and --simulator-port must differ")


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_sandbox_refuses_what_is_not_a_port(config_path, port):
    done = run("--config", str(config_path), "sandbox", "--port", port)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"argument --port: {port!r} is not a port (expected 1-65535)" in done.stderr


def test_sandbox_help_says_what_the_ports_move():
    done = run("sandbox", "--help")
    assert "--port PORT" in done.stdout and "the OAuth callback follows" in done.stdout
    assert "--simulator-port PORT" in done.stdout and "phone page" in done.stdout


def test_a_database_that_cannot_be_opened_is_one_line_with_its_own_words(tmp_path, config_path):
    done = run(
        "--config", str(config_path), "check", env={"BOT_STORAGE_URL": f"sqlite:///{tmp_path}"}
    )
    assert_one_line(done, "storage.url", "unable to open database file")


def test_a_misspelt_variable_is_a_warning_and_its_value_stays_hidden(config_path):
    done = run("--config", str(config_path), "check", env={"BOT_WECHAT_APPSECRET": "s3cr3tvalue"})
    assert done.returncode == 0, done.stderr
    assert (
        "config warning: BOT_WECHAT_APPSECRET: matches no configuration key and is ignored; "
        "did you mean BOT_WECHAT_APP_SECRET?"
    ) in done.stderr.splitlines()
    assert "s3cr3tvalue" not in done.stdout + done.stderr


def test_a_relative_sqlite_path_is_relative_to_the_config_file_for_every_command(tmp_path, sim):
    config = write_config(tmp_path / "config.toml", free_port(), sim.url)
    relative = {"BOT_STORAGE_URL": "sqlite:///relative.sqlite3"}
    for command in ("check", "users", "authorize-url"):
        assert run("--config", str(config), command, env=relative).returncode == 0
    assert (tmp_path / "relative.sqlite3").exists()
    assert not (ROOT / "relative.sqlite3").exists()


def test_the_command_line_does_not_import_bot_py_back():
    code = "import sys, cli; print('bot' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip() == "False", done.stderr


# -- sandbox: the README's first command ------------------------------------------------


def start_sandbox(config: Path, port: int, simulator_port: int) -> processes.BotProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    command = [sys.executable, "bot.py", "--config", str(config), "sandbox"]
    ports = ["--port", str(port), "--simulator-port", str(simulator_port)]
    return processes.BotProcess(
        command + ports,
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sandbox_runs_the_journey_on_loopback_with_its_own_database(tmp_path, taken_port):
    # A configured account, server and database that the sandbox must leave alone.
    config = write_config(tmp_path / "config.toml", taken_port, "http://127.0.0.1:9")
    configured_database = tmp_path / "bot.sqlite3"
    port, simulator_port = free_port(), free_port()
    bot, wechat = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{simulator_port}"
    process = start_sandbox(config, port, simulator_port)
    try:
        assert _wait_for(bot + "/healthz").status_code == 200
        announced = [process.stdout.readline() for _ in range(5)]
        assert f"{wechat}/phone" in "".join(announced)
        database = Path(re.search(r"throwaway database (\S+)", "".join(announced)).group(1))
        assert database.exists() and database.parent != tmp_path
        with requests.Session() as phone, requests.Session() as browser:
            _journey(phone, browser, bot, wechat)
        process.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "NOT configured" not in stderr
    assert not database.parent.exists(), "the throwaway database outlived the sandbox"
    assert not configured_database.exists(), "the configured storage.url was written"
    for address in (bot, wechat):
        with pytest.raises(requests.ConnectionError):
            requests.get(address + "/", timeout=2)


def _journey(phone: requests.Session, browser: requests.Session, bot: str, wechat: str) -> None:
    """What a person does on the phone page, over the same HTTP calls its script makes."""
    assert phone.get(wechat + "/phone", timeout=5).status_code == 200
    account = phone.get(wechat + "/api/account", timeout=5).json()
    assert account["modes"] == ["safe", "compatible", "plain"]  # the sandbox has an AES key
    menu = phone.get(wechat + "/api/menu", timeout=5).json()["button"]  # installed at start
    assert menu == [{"type": "view", "name": "我的", "url": bot + "/login?next=/me"}]
    me = phone.get(wechat + "/api/followers", timeout=5).json()["current"]
    pushed = {"openid": me, "type": "text", "content": "你好", "mode": "safe"}
    reply = phone.post(wechat + "/api/push", json=pushed, timeout=10).json()["reply"]
    link = unescape(re.search(r'<a href="([^"]+)">', reply["Content"]).group(1))
    assert link.startswith(wechat + "/connect/oauth2/authorize?appid=wxsandbox000000001&")
    assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{bot.rsplit(':', 1)[1]}%2F" in link
    tapped = phone.post(wechat + "/api/authorize", json={"url": link}, timeout=10).json()
    assert tapped["location"].startswith(bot + "/oauth/callback?code=")
    landed = browser.get(tapped["location"], timeout=10)
    assert landed.url == bot + "/me" and landed.status_code == 200
    followers = phone.get(wechat + "/api/followers", timeout=5).json()["followers"]
    follower = next(f for f in followers if f["openid"] == me)
    assert follower["nickname"] in landed.text
    assert f'src="{follower["headimgurl"]}"' in landed.text
    assert browser.get(follower["headimgurl"], timeout=5).status_code == 200
