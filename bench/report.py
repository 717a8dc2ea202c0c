"""The one table every figure goes into, and the machine it was measured on."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One figure: what, how much, against what, and whether it meets its target."""

    section: str
    figure: str
    value: str
    reference: str = ""
    ratio: str = ""
    verdict: str = ""


def verdict(ok: bool | None) -> str:
    """'meets' / 'MISSES' / '' (no target)."""
    return "" if ok is None else ("meets" if ok else "MISSES")


def median(values: list[float]) -> float:
    """The median, 0 for no values."""
    return statistics.median(values) if values else 0.0


def spread(values: list[float]) -> float:
    """(max - min) / min: how far apart a set of figures is."""
    return (max(values) - min(values)) / min(values) if values and min(values) > 0 else 0.0


def machine() -> str:
    """nproc, CPU model, RAM and kernel, in one line."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, Linux {platform.release()}"


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every figure)."""
    return Path("/proc/loadavg").read_text().split()[0]


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = [
        "| # | figure | measured | reference / target | ratio | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.section} | {r.figure} | {r.value} | {r.reference} | {r.ratio} | {r.verdict} |" for r in rows
    ]
    return "\n".join(lines)


def document(rows: list[Row], command: str, notes: list[str], started: datetime) -> str:
    """The results page: when, where, how, the table and the notes."""
    header = [
        "# callstats benchmark results",
        "",
        f"- date: {started.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        "",
    ]
    return "\n".join([*header, table(rows), "", *[f"- {note}" for note in notes], ""])
