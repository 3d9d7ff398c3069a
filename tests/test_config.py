"""The configuration tells the truth: what the bot cannot honour is refused with one
line per problem, a `BOT_*` variable that names no key is a warning, and the
database speaks for itself when it fails (never with its SQL parameters)."""

from __future__ import annotations

import sqlite3

import pytest

import config as settings
import routes
from storage import Follower, StorageError, Store
from tests.conftest import write_config

PASSWORD = "hunter2secret"  # must never be echoed


@pytest.fixture
def path(tmp_path):
    return write_config(tmp_path / "config.toml", 8888, "http://127.0.0.1:9000")


def refused(path, **environ: str) -> tuple[str, ...]:
    with pytest.raises(settings.ConfigError) as caught:
        settings.load(path, environ)
    problems = caught.value.problems
    assert all("\n" not in problem for problem in problems)
    return problems


def test_the_test_configuration_is_valid_and_quiet(path):
    config = settings.load(path, {})
    assert config.warnings == ()
    assert config.callback_url == "http://127.0.0.1:8888" + routes.CALLBACK


# -- storage.url ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///data/bot.sqlite3",
        "sqlite+pysqlite:////var/lib/bot/bot.sqlite3",
        "postgresql://bot@db.internal/bot",
        f"postgresql+psycopg://bot:{PASSWORD}@db.internal:5432/bot",
    ],
)
def test_sqlite_and_postgresql_are_accepted(path, url):
    assert settings.load(path, {"BOT_STORAGE_URL": url}).storage.url == url


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://bot:{PASSWORD}@db/bot",
        f"mysql+pymysql://bot:{PASSWORD}@db/bot",
        f"postgresql+asyncpg://bot:{PASSWORD}@db/bot",
        f"oracle://bot:{PASSWORD}@db/bot",
        "mssql+pyodbc://db/bot",
    ],
)
def test_any_other_database_is_refused_without_echoing_the_url(path, url):
    (problem,) = refused(path, BOT_STORAGE_URL=url)
    assert problem.startswith("storage.url: ")
    assert "not supported" in problem and "postgresql+psycopg://" in problem
    assert PASSWORD not in problem


@pytest.mark.parametrize(
    "url", [f"bot:{PASSWORD}@db/bot", "://", f"postgresql://bot:{PASSWORD}@db:port/bot"]
)
def test_something_that_is_no_url_is_refused(path, url):
    (problem,) = refused(path, BOT_STORAGE_URL=url)
    assert problem.startswith("storage.url: expected a SQLAlchemy URL")
    assert PASSWORD not in problem


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(path, url):
    assert refused(path, BOT_STORAGE_URL=url) == (
        "storage.url: in-memory SQLite is not shared between threads; give a file path",
    )


# -- server.wechat_path --------------------------------------------------------


@pytest.mark.parametrize(
    "taken", [*routes.PAGES, "/me/", "/api", "/api/access-token", "/api/anything/else"]
)
def test_a_wechat_path_that_shadows_a_route_of_the_bot_is_refused(path, taken):
    (problem,) = refused(path, BOT_SERVER_WECHAT_PATH=taken)
    assert problem == (
        f"server.wechat_path: {taken!r} is one of the bot's own routes; use e.g. /wechat"
    )


@pytest.mark.parametrize(
    "odd", ["wechat", "", "/wechat?x=1", "/wechat#top", "/a/../wechat", "/./wechat", "/we chat",
            "//wechat", "/微信", "/wechat%20"],
)  # fmt: skip
def test_a_wechat_path_that_is_not_a_plain_path_is_refused(path, odd):
    (problem,) = refused(path, BOT_SERVER_WECHAT_PATH=odd)
    assert problem.startswith(f"server.wechat_path: {odd!r} is not a plain path")


@pytest.mark.parametrize("plain", ["/wechat", "/wechat/", "/wx/push", "/we-chat_v2.1~x", "/meow"])
def test_plain_wechat_paths_are_accepted(path, plain):
    assert settings.load(path, {"BOT_SERVER_WECHAT_PATH": plain}).server.wechat_path == plain


# -- server.public_url ---------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/bot", "/bot/", "/a/b"])
def test_a_public_url_with_a_path_is_refused(path, prefix):
    (problem,) = refused(path, BOT_SERVER_PUBLIC_URL="https://bot.example.com" + prefix)
    assert problem.startswith("server.public_url: the bot serves its routes at the root")
    assert repr(prefix) in problem


def test_a_public_url_with_credentials_is_refused_without_echoing_them(path):
    problems = refused(path, BOT_SERVER_PUBLIC_URL=f"https://admin:{PASSWORD}@bot.example.com")
    assert problems == ("server.public_url: must not carry a user name or password",)


@pytest.mark.parametrize(
    "url",
    [
        "bot.example.com",
        "ftp://bot.example.com",
        "https://",
        "https://bot example.com",
        "https://bot.example.com:99999",
        "https://bot.example.com:https",
    ],
)
def test_a_public_url_that_is_no_http_origin_is_refused(path, url):
    assert refused(path, BOT_SERVER_PUBLIC_URL=url) == (
        "server.public_url: expected an http(s) URL such as https://bot.example.com",
    )


def test_every_problem_of_public_url_is_its_own_line(path):
    problems = refused(path, BOT_SERVER_PUBLIC_URL="https://a:b@bot.example.com/bot?x=1")
    assert len(problems) == 3


@pytest.mark.parametrize(
    "url", ["https://bot.example.com", "https://bot.example.com/", "http://[::1]:8888"]
)
def test_an_origin_is_accepted(path, url):
    config = settings.load(path, {"BOT_SERVER_PUBLIC_URL": url})
    assert config.callback_url == url.rstrip("/") + "/oauth/callback"


def test_scopes_are_the_ones_the_authorize_url_knows(path):
    (problem,) = refused(path, BOT_OAUTH_SCOPE="snsapi_login")
    assert problem == "oauth.scope: expected snsapi_base or snsapi_userinfo"


def test_all_problems_are_reported_together(path):
    problems = refused(
        path,
        BOT_STORAGE_URL="mysql://db/bot",
        BOT_SERVER_WECHAT_PATH="/me",
        BOT_SERVER_PUBLIC_URL="https://bot.example.com/bot",
        BOT_WECHAT_TOKEN="x",
    )
    keys = [problem.split(":")[0] for problem in problems]
    assert sorted(keys) == [
        "server.public_url",
        "server.wechat_path",
        "storage.url",
        "wechat.token",
    ]


# -- BOT_* variables that match no key ----------------------------------------


def test_a_misspelt_variable_is_a_warning_naming_the_closest_key(path):
    config = settings.load(path, {"BOT_WECHAT_APPSECRET": PASSWORD})
    assert config.warnings == (
        "BOT_WECHAT_APPSECRET: matches no configuration key and is ignored; "
        "did you mean BOT_WECHAT_APP_SECRET?",
    )


def test_a_lower_case_variable_is_a_warning_too(path):
    (warning,) = settings.load(path, {"bot_server_port": "80"}).warnings
    assert warning.endswith("did you mean BOT_SERVER_PORT?")


def test_warnings_never_carry_the_value_and_come_with_problems_too(path):
    environ = {"BOT_STORAGE_PASSWORD": PASSWORD, "BOT_OAUTH_SCOPE": "nope"}
    with pytest.raises(settings.ConfigError) as caught:
        settings.load(path, environ)
    (warning,) = caught.value.warnings
    assert warning.startswith("BOT_STORAGE_PASSWORD: matches no configuration key")
    assert PASSWORD not in warning


def test_known_keys_bot_config_and_other_variables_are_quiet(path):
    environ = {
        "BOT_CONFIG": str(path),
        "BOT_WECHAT_APP_SECRET": "another0secret",
        "BOT_SERVER_PORT": "9999",
        "BOTTLE_CHILD": "1",
        "HOME": "/root",
    }
    assert settings.load(path, environ).warnings == ()


# -- the database's own words --------------------------------------------------


def test_a_database_that_cannot_be_opened_says_so(tmp_path):
    with pytest.raises(StorageError) as caught:
        Store.from_url(f"sqlite:///{tmp_path}")  # a directory
    assert "unable to open database file" in str(caught.value)


def test_a_failed_write_keeps_the_message_but_not_the_parameters(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    Store.from_url(url).close()
    with sqlite3.connect(tmp_path / "bot.sqlite3") as database:
        database.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON followers "
            "BEGIN SELECT RAISE(ABORT, 'followers are read-only today'); END"
        )
    store = Store.from_url(url)
    follower = Follower(
        openid="o6_secretive", scope="snsapi_base", access_token="ACCESS-TOKEN-VALUE",
        access_expires_at=1, refresh_token="REFRESH-TOKEN-VALUE", refresh_expires_at=2,
    )  # fmt: skip
    with pytest.raises(StorageError) as caught:
        store.save_follower(follower)
    store.close()
    message = str(caught.value)
    assert message == "storage write failed: IntegrityError: followers are read-only today"
    for value in ("ACCESS-TOKEN-VALUE", "REFRESH-TOKEN-VALUE", "o6_secretive", "INSERT"):
        assert value not in message


# -- server.api_key ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "0123456789abcdef" * 4, "Zm9vYmFyLWJhei1xdXV4LWNvcmdlLWdyYXVsdA==", "a-b.c_d~e+f/" * 3],
)
def test_an_api_key_is_empty_or_a_long_bearer_token(path, key):
    assert settings.load(path, {"BOT_SERVER_API_KEY": key}).server.api_key == key


@pytest.mark.parametrize(
    "key", ["short", "x" * 31, "has a space in it and is long enough", "密钥" * 20, "=" + "a" * 40]
)
def test_an_api_key_too_short_or_not_header_safe_is_refused_without_echoing_it(path, key):
    (problem,) = refused(path, BOT_SERVER_API_KEY=key)
    assert problem.startswith("server.api_key: expected empty")
    assert key not in problem


def test_the_api_key_stays_out_of_the_configs_repr(path):
    key = "fedcba9876543210" * 4
    assert key not in repr(settings.load(path, {"BOT_SERVER_API_KEY": key}))


# -- oauth.return_hosts ------------------------------------------------------------


def test_return_hosts_come_from_a_toml_array_or_a_comma_separated_variable(path):
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("[oauth]", '[oauth]\nreturn_hosts = ["shop.example.com", "M.example.com"]')
    )
    assert settings.load(path, {}).oauth.return_hosts == ("shop.example.com", "M.example.com")
    hosts = " shop.example.com, m.example.com ,"
    config = settings.load(path, {"BOT_OAUTH_RETURN_HOSTS": hosts})
    assert config.oauth.return_hosts == ("shop.example.com", "m.example.com")
    assert settings.load(path, {"BOT_OAUTH_RETURN_HOSTS": ""}).oauth.return_hosts == ()


@pytest.mark.parametrize(
    "host",
    [
        "https://shop.example.com",
        "shop.example.com:443",
        "shop.example.com/",
        "*.example.com",
        "shop.example.com.",
        "-shop.example.com",
        "shop_example.com",
        "user@shop.example.com",
        "商店.example.com",
    ],
)
def test_a_return_host_that_is_no_bare_host_name_is_refused(path, host):
    (problem,) = refused(path, BOT_OAUTH_RETURN_HOSTS=f"ok.example.com,{host}")
    assert problem.startswith(f"oauth.return_hosts: {host!r} is not a host name")


def test_return_hosts_that_are_no_list_of_strings_are_refused(path):
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[oauth]", "[oauth]\nreturn_hosts = [1, 2]"))
    assert refused(path) == ("oauth.return_hosts: expected a list of strings",)
