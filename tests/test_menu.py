"""`python bot.py menu` and `menu --show`, run as operators run them (a subprocess) against
the WeChat simulator over real HTTP, with the basic access_token shared through the
bot's store."""

from __future__ import annotations

import json
import re

import pytest
import requests
import wcwidth

from tests.conftest import APP_ID, APP_SECRET, BotServer, free_port, write_config
from tests.test_cli import run

API_KEY = "k3y-0f-the-0perat0rs-0ther-serv1ces-4ll-0f-them"
STABLE = "/cgi-bin/stable_token"
CREATE = "/cgi-bin/menu/create"


@pytest.fixture
def bot(start_bot) -> BotServer:
    """A bot with the internal API on, whose configuration the commands use."""
    return start_bot(BOT_SERVER_API_KEY=API_KEY)


def menu(bot: BotServer, *args: str, **env: str):
    return run("--config", str(bot.config.source), "menu", *args, env=env)


def login_button(bot: BotServer) -> dict:
    return {"type": "view", "name": "我的", "url": bot.url + "/login?next=/me"}


def calls(sim, path: str) -> int:
    return sim.calls.paths().count(path)


def tokens_issued(sim) -> set[str]:
    """Every basic access_token the simulator handed out."""
    return set(sim.basic_tokens._expiry)


def one_error_line(done) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_menu_installs_a_view_button_to_the_sign_in_entry_with_the_shared_token(sim, bot):
    shared = requests.get(
        bot.url + "/api/access-token", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    ).json()["access_token"]
    done = menu(bot)
    assert done.returncode == 0, done.stderr
    assert sim.menu.buttons == [login_button(bot)]
    assert calls(sim, STABLE) == 1  # the token the bot already held, from the store
    [(_, params)] = [call for call in sim.calls if call[0] == CREATE]
    assert params["access_token"] == shared
    lines = done.stdout.splitlines()
    assert lines[0] == "custom menu installed:"
    assert re.fullmatch(rf"  我的\s+view\s+{re.escape(bot.url)}/login\?next=/me", lines[2])
    assert shared not in done.stdout + done.stderr and APP_SECRET not in done.stdout


def test_installing_again_changes_nothing(sim, bot):
    first = menu(bot)
    again = menu(bot)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert sim.menu.buttons == [login_button(bot)]
    assert calls(sim, STABLE) == 1 and calls(sim, CREATE) == 2


def test_show_prints_the_installed_menu_as_wechat_has_it(sim, bot):
    assert menu(bot).returncode == 0
    done = menu(bot, "--show")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "installed custom menu:",
        "  name  type  opens / key",
        f"  我的  view  {bot.url}/login?next=/me",
    ]


def test_show_lines_up_chinese_names_and_submenus(sim, bot):
    installed = {
        "button": [
            {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
            {
                "name": "菜单",
                "sub_button": [
                    {"type": "view", "name": "搜索", "url": "https://www.soso.com/"},
                    {"type": "click", "name": "赞一下我们🎉", "key": "V1001_GOOD"},
                    {"type": "view", "name": "\u202eevil", "url": "https://a.example/"},
                ],
            },
            {"type": "media_id", "name": "图文", "media_id": "MEDIA_ID1"},
        ]
    }
    sim.menu.create(json.dumps(installed, ensure_ascii=False).encode())  # by another tool
    done = menu(bot, "--show")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [
        "今日歌曲", "菜单", "搜索", "赞一下我们🎉", "?evil", "图文",
    ]  # fmt: skip
    assert rows[2].startswith("    搜索") and rows[1].startswith("  菜单  ")
    for column, values in (("type", ["click", "submenu", "view", "click", "view", "media_id"]),):
        start = wcwidth.width(header[: header.index(column)])
        for row, value in zip(rows, values, strict=True):
            assert wcwidth.width(row[: row.index(f"  {value}") + 2]) == start, (row, done.stdout)
    assert "V1001_GOOD" in rows[3] and "MEDIA_ID1" in rows[5]
    assert "\u202e" not in done.stdout  # a bidi override would reorder the terminal's line


def test_show_without_a_menu_says_so(sim, bot):
    done = menu(bot, "--show")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no custom menu is installed\n"


def test_a_token_wechat_invalidated_is_renewed_once(sim, bot):
    assert menu(bot).returncode == 0
    body = {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
    requests.post(sim.url + STABLE, json={**body, "force_refresh": True}, timeout=10)
    done = menu(bot)
    assert done.returncode == 0, done.stderr
    assert calls(sim, CREATE) == 3  # the first install, the one refused, the one after renewal
    assert calls(sim, STABLE) == 3  # the first token, the forced one, the renewal


def test_a_menu_wechat_refuses_is_one_line(sim, tmp_path):
    """A public_url so long that the button's URL passes WeChat's 1024 bytes."""
    path = write_config(tmp_path / "config.toml", free_port(), sim.url)
    long_host = ".".join(["a" * 60] * 17) + ".example"
    done = run("--config", str(path), "menu", env={"BOT_SERVER_PUBLIC_URL": f"https://{long_host}"})
    line = one_error_line(done)
    assert line == (
        "error: WeChat refused cgi-bin/menu/create: errcode 40020 "
        "(a top-level button's URL is empty or longer than 1024 bytes)"
    )
    assert sim.menu.buttons == []


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        (CREATE, "http_error", "error: WeChat did not answer (cgi-bin/menu/create: HTTP 502)"),
        (
            CREATE,
            "garbage",
            "error: WeChat did not answer (cgi-bin/menu/create: answer is not JSON)",
        ),
        (
            "/cgi-bin/menu/get",
            "reset",
            "error: WeChat did not answer (cgi-bin/menu/get: ConnectionError)",
        ),
        (STABLE, "html", "error: WeChat did not answer (cgi-bin/stable_token: answer is not JSON)"),
    ],
)
def test_wechat_failing_is_one_line_and_no_secret(sim, bot, path, kind, expected):
    sim.fault(path, kind, times=5)
    args = ("--show",) if path.endswith("/get") else ()
    line = one_error_line(menu(bot, *args))
    assert line == expected
    for secret in (*tokens_issued(sim), APP_SECRET):
        assert secret not in line


def test_a_wrong_secret_is_one_line_that_says_which_key(sim, bot):
    done = menu(bot, BOT_WECHAT_APP_SECRET="not" + APP_SECRET[3:])
    assert one_error_line(done) == (
        "error: WeChat refused cgi-bin/stable_token: errcode 40125 (wechat.app_secret is wrong)"
    )
    assert APP_SECRET[3:] not in done.stdout + done.stderr


def test_wechat_busy_is_asked_again(sim, bot):
    sim.fault(CREATE, "busy", times=2)
    assert menu(bot).returncode == 0
    assert calls(sim, CREATE) == 3


def test_tapping_the_button_pushes_view_and_the_bot_answers_nothing(sim, bot):
    assert menu(bot).returncode == 0
    tapped = sim.tap_menu(sim.default_openid, 0)
    assert tapped["url"] == bot.url + "/login?next=/me"
    assert tapped["status"] == 200 and tapped["reply"] is None and "error" not in tapped
