"""Command line: `python -m simulator --port 9000 --bot-url URL --app-id ID ...`."""

import argparse
import logging
import sys
import threading

from simulator.app import ACCOUNT_NAME, Simulator


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options CONTRACT.md promises."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="A local WeChat official-account platform."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on")
    parser.add_argument("--bot-url", required=True, help="the bot's message URL")
    parser.add_argument("--app-id", required=True, help="the account's AppID")
    parser.add_argument("--app-secret", required=True, help="the account's AppSecret")
    parser.add_argument("--token", required=True, help="the server token")
    parser.add_argument("--aes-key", default="", help="EncodingAESKey; empty: plaintext only")
    parser.add_argument(
        "--callback-domain", help="the OAuth callback domain (default: host of --bot-url)"
    )
    parser.add_argument(
        "--account-name",
        default=ACCOUNT_NAME,
        help=f"the account's name on the phone page (default {ACCOUNT_NAME})",
    )
    parser.add_argument(
        "--tls-cert", help="serve HTTPS with this PEM certificate (chain); needs --tls-key"
    )
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    parser.add_argument(
        "--round-trip",
        type=float,
        default=0.0,
        metavar="MS",
        help="network round trip to inject, in milliseconds: once per request, and once per "
        "handshake (TCP's, and TLS's) of a new connection (default 0)",
    )
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.round_trip < 0:
        parser.error("--round-trip cannot be negative")
    return args


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, one log line per request on stderr."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        sim = Simulator(
            app_id=args.app_id,
            app_secret=args.app_secret,
            token=args.token,
            bot_url=args.bot_url,
            callback_domain=args.callback_domain,
            aes_key=args.aes_key,
            account_name=args.account_name,
            tls=(args.tls_cert, args.tls_key) if args.tls_cert else None,
            round_trip=args.round_trip / 1000,
        ).start(args.host, args.port)
    except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
        print(f"simulator: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"WeChat simulator on {sim.url} (phone page: {sim.url}/phone)", file=sys.stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
