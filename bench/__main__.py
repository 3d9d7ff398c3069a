"""`python -m bench`: every scenario, every contender, in one go on loopback.

    .venv/bin/python -m bench [SCENARIO ...] [--contender NAME ...] [--mode MODE ...]
        [--seconds 10] [--rounds 3] [--workers 2] [--threads 4] [--connections 50]
        [--json docs/bench.json] [--png docs/bench.png]

Scenarios: messages (the message path, plaintext and safe mode), journey (the OAuth
journey against the simulator), gate (`/auth`). Each contender runs under the same
gunicorn (gthread, workers × threads) driven by Debian's wrk; contenders alternate
within each round and each row is the median round. Prints a table (Markdown), the
issue's targets as ratios and the machine; writes the JSON and the PNG chart.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from bench.report import Options, Row, Target, machine, table, write_json, write_png

SCENARIOS = ("messages", "journey", "gate")
ROOT = Path(__file__).resolve().parent.parent


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--contender", action="append", default=[], help="only these")
    parser.add_argument("--mode", action="append", default=[], help="e.g. plaintext, safe")
    parser.add_argument("--seconds", type=float, default=Options.seconds)
    parser.add_argument("--rounds", type=int, default=Options.rounds)
    parser.add_argument("--workers", type=int, default=Options.workers)
    parser.add_argument("--threads", type=int, default=Options.threads)
    parser.add_argument("--connections", type=int, default=Options.connections)
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "bench.json")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "bench.png")
    args = parser.parse_args(argv)
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
    return args


def scenarios(names: list[str]) -> list[ModuleType]:
    """The scenario modules asked for (all by default: those in this checkout)."""
    wanted = names or [name for name in SCENARIOS if importlib.util.find_spec(f"bench.{name}")]
    return [importlib.import_module(f"bench.{name}") for name in wanted]


def main(argv: list[str] | None = None) -> int:
    args = arguments(sys.argv[1:] if argv is None else argv)
    before = machine()
    rows: list[Row] = []
    found: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        options = Options(
            seconds=args.seconds, rounds=args.rounds, workers=args.workers,
            threads=args.threads, connections=args.connections,
            contenders=frozenset(args.contender), modes=frozenset(args.mode),
            workdir=Path(workdir),
        )  # fmt: skip
        for module in scenarios(args.scenarios):
            measured = module.run(options)
            rows += measured
            found += getattr(module, "targets", lambda _: [])(measured)
    about = {**machine(), "load_average_before": before["load_average"]}
    print(table(rows))
    print()
    print("\n".join(str(target) for target in found))
    print(
        f"\n{about['cores']} cores ({about['cpu']}), Python {about['python']}, "
        f"{args.workers} gunicorn gthread workers × {args.threads} threads, "
        f"{args.connections} connections, {args.rounds} rounds of {args.seconds:g} s; "
        f"load average {before['load_average'][0]} before, {about['load_average'][0]} after"
    )
    write_json(args.json, rows, found, options, about)
    write_png(args.png, rows, about)
    print(f"written: {args.json}, {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
