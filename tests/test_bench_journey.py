"""One-second smokes of the journey and /auth scenarios of `python -m bench`: real
gunicorn, wrk and simulator, every request answered as it should be (no figures
checked: speed is what the benchmark reports)."""

from __future__ import annotations

from pathlib import Path

from bench import gate, journey
from bench.report import Options

SMALL = {"seconds": 1, "rounds": 1, "workers": 1, "threads": 2, "connections": 4}


def test_journey_smoke(tmp_path: Path) -> None:
    rows = journey.run(Options(**SMALL, wrk_threads=1, workdir=tmp_path))
    assert [row.contender for row in rows] == ["ours", "seed-style"]
    for row in rows:
        assert row.errors == 0 and row.extras["requests"] >= 2, row
    assert [target.name for target in journey.targets(rows)] == [
        "journey: ours' errors",
        "journey: ours / seed-style rps",
        "journey: ours / seed-style p50_ms",
    ]


def test_auth_smoke(tmp_path: Path) -> None:
    rows = gate.run(Options(**SMALL, wrk_threads=1, workdir=tmp_path))
    assert [row.contender for row in rows] == ["ours", "ceiling"]
    for row in rows:
        assert row.errors == 0 and row.extras["requests"] > 0, row
    names = [target.name for target in gate.targets(rows)]
    assert names == [
        "/auth: ours' errors",
        "/auth: ours / ceiling rps",
        "/auth: ceiling / ours CPU µs per request (steadier)",
    ]
