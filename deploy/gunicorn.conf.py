"""gunicorn for the bot in production:

    gunicorn -c deploy/gunicorn.conf.py bot:app

Binds where the bot's configuration says (`server.host`, `server.port`: config.toml,
BOT_CONFIG, BOT_SERVER_HOST, BOT_SERVER_PORT) and refuses to start, exit status 2,
when that configuration is bad. One gthread worker per CPU (at least 2;
WEB_CONCURRENCY overrides). The bot's log, one line per request included, goes to
stderr; gunicorn's access log stays off, because its request line carries the query
string, where WeChat's signatures and the callback's code travel. gunicorn's own
flags and GUNICORN_CMD_ARGS win over this file.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402 - the bot's modules, from the checkout this file lives in
import config as settings  # noqa: E402


def _server() -> settings.Server:
    try:
        return settings.load().server
    except settings.ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        raise SystemExit(cli.EXIT_CONFIG) from None


def _workers() -> int:
    wanted = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not wanted:
        return max(2, os.cpu_count() or 1)  # two, so that one stuck worker is not an outage
    if not wanted.isdecimal() or int(wanted) < 1:
        print(
            f"error: WEB_CONCURRENCY={wanted!r}: expected a whole number of workers",
            file=sys.stderr,
        )
        raise SystemExit(cli.EXIT_CONFIG)
    return int(wanted)


_listen = _server()
_host = f"[{_listen.host}]" if ":" in _listen.host else _listen.host  # an IPv6 address
bind = [f"{_host}:{_listen.port}"]
chdir = str(ROOT)  # where `bot:app` is imported from
proc_name = "wechat-bot"

worker_class = "gthread"
workers = _workers()
# Requests worked on at once per worker. Follower pages may wait on WeChat for up to
# 8 s (the bot's page deadline): enough threads that a few slow pages never leave a
# push from WeChat waiting for one.
threads = 16
# Connections per worker, keep-alive ones included: an instance holds about 1000 in
# all. Each worker takes only its share, or one of them hoards the keep-alive
# connections and the others idle (seen in bench/messages.py).
worker_connections = max(threads, -(-1000 // workers))
# An idle keep-alive connection is closed after this: longer than nginx keeps its
# idle upstream connections (3 s in deploy/nginx.conf), so nginx always closes first
# and never sends a push down a connection gunicorn is closing.
keepalive = 4
# A worker whose main loop is silent this long is replaced (requests run on threads
# and do not hold it: a push is answered within WeChat's 5 s by the bot's own limits,
# a page within its 8 s deadline).
timeout = 30
# On SIGTERM or a HUP reload, a worker finishes its requests in flight for up to this:
# a push needs under 5 s, a page at most its 8 s deadline.
graceful_timeout = 10

preload_app = False  # each worker opens its own database connections
accesslog = None
control_socket_disable = True  # systemd manages the service; two instances, no clash


def post_fork(_arbiter, _worker) -> None:
    """In each worker, before the app loads: the bot's records to stderr, from INFO."""
    cli.setup_logging()
