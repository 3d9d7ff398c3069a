"""What every scenario of `python -m bench` returns, and how the run is reported.

A scenario is a module with `run(options: Options) -> list[Row]`: one Row per
(mode, contender), the median of `options.rounds` interleaved rounds. This module
turns the rows into the printed table, the JSON file and the PNG chart, and
records the machine they came from.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "gunicorn", "WeRoBot", "wechatpy", "Flask", "Werkzeug", "requests", "lxml",
    "SQLAlchemy", "cryptography", "matplotlib",
)  # fmt: skip


@dataclass
class Options:
    """One run's settings, the same for every scenario and contender."""

    seconds: float = 10.0  # of load per contender and round
    rounds: int = 3  # contenders alternate within a round; rows are medians
    workers: int = 2  # gunicorn gthread workers ...
    threads: int = 4  # ... and threads per worker
    connections: int = 50  # wrk's open connections
    wrk_threads: int = 2
    contenders: frozenset[str] = frozenset()  # empty: all of them
    modes: frozenset[str] = frozenset()  # e.g. "plaintext", "safe"; empty: all
    workdir: Path = Path("/tmp")  # noqa: S108 - replaced by a throwaway directory per run

    def wants(self, contender: str, mode: str = "") -> bool:
        """Whether the run includes this contender (and mode)."""
        return (not self.contenders or contender in self.contenders) and (
            not mode or not self.modes or mode in self.modes
        )


@dataclass
class Row:
    """One contender in one mode of one scenario: the median round's figures."""

    scenario: str
    mode: str
    contender: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # over all rounds: socket errors, non-200s, answers that are not a reply
    peak_rss_mib: float  # the largest worker's peak resident set, over all rounds
    load_generator_cpu_share: float  # wrk's CPU time over the machine's (wall time × cores)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """A ratio the issue sets, e.g. ours / WeRoBot's requests/s ≥ 1.0. A scenario may
    expose `targets(rows) -> list[Target]`; `python -m bench` prints and stores them."""

    name: str
    value: float
    goal: float
    at_least: bool = True  # False: the value must be at most the goal

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    def __str__(self) -> str:
        sign = "≥" if self.at_least else "≤"
        verdict = "met" if self.met else "MISSED"
        return f"{self.name}: {self.value:.2f} (target {sign} {self.goal:g}, {verdict})"


def ratio(rows: list[Row], scenario: str, mode: str, pair: tuple[str, str], figure: str) -> float:
    """`figure` (a Row attribute, or a key of its extras) of the first contender over
    the second's."""
    found = {row.contender: row for row in rows if (row.scenario, row.mode) == (scenario, mode)}
    first, second = (
        getattr(found[name], figure, None) or found[name].extras.get(figure, 0) for name in pair
    )
    return first / second if second else float("inf")


def median(rounds: list[Row]) -> Row:
    """The round with the median throughput, its latencies with it; errors summed and
    peak RSS the largest over all rounds; each round's throughput in extras."""
    ordered = sorted(rounds, key=lambda row: row.rps)
    chosen = ordered[len(ordered) // 2]
    extras = {
        **chosen.extras,
        "rounds_rps": [round(row.rps) for row in rounds],
        "rps_spread": round((ordered[-1].rps - ordered[0].rps) / max(chosen.rps, 1), 3),
    }
    return Row(
        chosen.scenario, chosen.mode, chosen.contender, chosen.rps, chosen.p50_ms,
        chosen.p99_ms, sum(row.errors for row in rounds),
        max(row.peak_rss_mib for row in rounds),
        statistics.median(row.load_generator_cpu_share for row in rounds), extras,
    )  # fmt: skip


def machine() -> dict[str, Any]:
    """Where the figures come from: cores, CPU model, memory, OS, Python, packages."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        (line.split()[1] for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line),
        "0",
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(value, 2) for value in os.getloadavg()],  # others' work too
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(int(memory) / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "wrk": _wrk_version(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def table(rows: Iterable[Row]) -> str:
    """The rows as a Markdown table (what the README carries)."""
    lines = [
        "| scenario | mode | contender | req/s | p50 ms | p99 ms | errors "
        "| peak RSS/worker MiB | CPU µs/req | wrk CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cpu = row.extras.get("cpu_us_per_request")
        lines.append(
            f"| {row.scenario} | {row.mode} | {row.contender} | {row.rps:,.0f} "
            f"| {row.p50_ms:.1f} | {row.p99_ms:.1f} | {row.errors} | {row.peak_rss_mib:.0f} "
            f"| {'' if cpu is None else f'{cpu:.0f}'} | {row.load_generator_cpu_share:.0%} |"
        )
    return "\n".join(lines)


def write_json(
    path: Path, rows: list[Row], targets: list[Target], options: Options, about: dict[str, Any]
) -> None:
    settings = {
        key: sorted(value) if isinstance(value, frozenset) else value
        for key, value in asdict(options).items()
        if key != "workdir"
    }
    document = {
        "machine": about,
        "options": settings,
        "rows": [asdict(row) for row in rows],
        "targets": [{**asdict(target), "met": target.met} for target in targets],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


OURS = "ours"  # the contender drawn in its own colour


def write_png(path: Path, rows: list[Row], about: dict[str, Any]) -> None:
    """A column per scenario and mode: requests/s above (p99 and any errors written on
    each bar), the server's CPU time per request below (steadier on a busy machine)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.scenario, row.mode), []).append(row)
    figure, axes = pyplot.subplots(2, len(groups), figsize=(4.2 * len(groups), 8), squeeze=False)
    for column, ((scenario, mode), group) in enumerate(groups.items()):
        title = f"{scenario} ({mode})" if mode else scenario
        _bars(axes[0][column], group, [row.rps for row in group], f"{title}: requests/s")
        for bar, row in zip(axes[0][column].patches, group, strict=True):
            errors = f"\n{row.errors:,} errors" if row.errors else ""
            axes[0][column].annotate(
                f"{row.rps:,.0f}\np99 {row.p99_ms:,.0f} ms{errors}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=7,
            )  # fmt: skip
        cpu = [row.extras.get("cpu_us_per_request", 0) for row in group]
        _bars(axes[1][column], group, cpu, "server CPU µs per request (lower is better)")
        axes[1][column].bar_label(axes[1][column].containers[0], fmt="%.0f", fontsize=7)
    figure.suptitle(
        f"{about['cores']} cores, {about['cpu']}, Python {about['python']}, {about['date']}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _bars(axis: Any, group: list[Row], heights: list[float], title: str) -> None:
    colours = ["tab:orange" if row.contender == OURS else "tab:blue" for row in group]
    axis.bar([row.contender for row in group], heights, color=colours)
    axis.set_title(title, fontsize=9)
    axis.margins(y=0.25)
    axis.tick_params(axis="x", labelrotation=30, labelsize=8)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
    except OSError:
        return "missing"
    return (out.stdout + out.stderr).split("Copyright")[0].strip()
