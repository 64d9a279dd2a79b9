"""A latency budget a deployment is held to: ``pause_p95=900,pauses_shown=0.9,errors=0`` parsed
into lines, each checked against a report of ``assistant bench --server`` and printed as held or
missed, so a CI job can gate a rollout on the exit code (as with k6's thresholds), and written as
JUnit XML, the report format CI systems read.

A line is an upper bound for times, counts and cost (``pause_p95=900``: the 95th percentile of
pause -> visible is at most 900 ms) and a lower bound for shares (``pauses_shown=0.9``: a
suggestion was on screen at 90 % of the pauses or more). A figure the run could not measure
(no pause at all, so no percentile) misses its line: a gate must not pass on no evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


class BudgetError(ValueError):
    """A ``--budget`` the user must fix (the message says how)."""


@dataclass(frozen=True)
class Metric:
    name: str
    what: str
    unit: str  # "ms", "share", "count", "$/h"
    at_least: bool  # a lower bound (shares) rather than an upper one
    read: Callable[[dict], float | None]


def _percentile(key: str, q: str) -> Callable[[dict], float | None]:
    return lambda report: (report.get(key) or {}).get(q)


def _field(key: str) -> Callable[[dict], float | None]:
    return lambda report: report.get(key)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        *(
            Metric(
                f"pause_{q}",
                f"pause -> visible {q}",
                "ms",
                False,
                _percentile("pause_to_visible_ms", q),
            )
            for q in ("p50", "p95", "p99")
        ),
        *(
            Metric(
                f"key_{q}",
                f"keystroke -> visible {q}",
                "ms",
                False,
                _percentile("key_to_visible_ms", q),
            )
            for q in ("p50", "p95", "p99")
        ),
        Metric(
            "pauses_shown",
            "pauses with a suggestion visible",
            "share",
            True,
            _field("visible_at_pause_share"),
        ),
        Metric(
            "acceptance",
            "acceptance rate (accepted / shown)",
            "share",
            True,
            _field("acceptance_rate"),
        ),
        Metric(
            "saved_share",
            "share of the text the typists did not type",
            "share",
            True,
            _field("saved_share"),
        ),
        Metric(
            "errors",
            "error frames and typists that could not connect",
            "count",
            False,
            _field("errors"),
        ),
        Metric(
            "disconnects",
            "connections the server closed mid-run",
            "count",
            False,
            _field("disconnects"),
        ),
        Metric(
            "violations", "protocol guarantees broken", "count", False, _field("violation_count")
        ),
        Metric(
            "cost_per_hour",
            "dollars per typing hour (from done frames)",
            "$/h",
            False,
            _field("cost_per_typing_hour_usd"),
        ),
    )
}


@dataclass(frozen=True)
class Line:
    metric: Metric
    limit: float

    @property
    def text(self) -> str:
        sign = ">=" if self.metric.at_least else "<="
        return f"{self.metric.name} {sign} {_show(self.limit, self.metric.unit)}"


@dataclass(frozen=True)
class Outcome:
    line: Line
    measured: float | None

    @property
    def held(self) -> bool:
        if self.measured is None:
            return False
        if self.line.metric.at_least:
            return self.measured >= self.line.limit
        return self.measured <= self.line.limit

    @property
    def text(self) -> str:
        unit = self.line.metric.unit
        seen = "not measured" if self.measured is None else _show(self.measured, unit)
        return f"{'held  ' if self.held else 'MISSED'}  {self.line.text}  (measured {seen})"

    def to_json(self) -> dict:
        return {
            "metric": self.line.metric.name,
            "bound": "min" if self.line.metric.at_least else "max",
            "limit": self.line.limit,
            "measured": self.measured,
            "held": self.held,
        }


def _show(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.1f} ms" if value != int(value) else f"{int(value):,} ms"
    if unit == "share":
        return f"{value:g}"
    if unit == "$/h":
        return f"${value:.4f}/h"
    return f"{value:g}"


def parse_budget(text: str) -> tuple[Line, ...]:
    """``name=value,…`` -> the lines; BudgetError naming what is wrong and what is allowed."""
    lines: dict[str, Line] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq:
            raise BudgetError(f"budget {part!r} has no value: write {name}=NUMBER")
        metric = METRICS.get(name)
        if metric is None:
            raise BudgetError(f"unknown budget {name!r}; choose from {', '.join(METRICS)}")
        try:
            limit = float(value)
        except ValueError:
            raise BudgetError(f"budget {name}={value!r}: {value!r} is not a number") from None
        if not math.isfinite(limit) or limit < 0:
            raise BudgetError(f"budget {name}={value}: must be a finite number, 0 or more")
        if metric.unit == "share" and limit > 1:
            raise BudgetError(f"budget {name}={value}: a share is between 0 and 1")
        if name in lines:
            raise BudgetError(f"budget {name} is given twice")
        lines[name] = Line(metric, limit)
    if not lines:
        raise BudgetError(f"empty budget; give name=value pairs from {', '.join(METRICS)}")
    return tuple(lines.values())


def check(lines: tuple[Line, ...], report: dict) -> list[Outcome]:
    out = []
    for line in lines:
        value = line.metric.read(report)
        out.append(Outcome(line, None if value is None else float(value)))
    return out


def junit_xml(outcomes: list[Outcome], *, suite: str, seconds: float, error: str = "") -> str:
    """JUnit XML: one test case per budget line, failed when missed; ``error`` (a run that could
    not start: refused, unreachable, bad certificate) is one test case in error instead."""
    from xml.etree import ElementTree as ET  # here: the parser imports this module's names

    cases = ET.Element("testsuite", name=suite, time=f"{seconds:.1f}")
    failures = errors = 0
    if error:
        case = ET.SubElement(cases, "testcase", classname=suite, name="connect", time="0")
        ET.SubElement(case, "error", message=error, type="connection")
        errors += 1
    for o in outcomes:
        case = ET.SubElement(cases, "testcase", classname=suite, name=o.line.text, time="0")
        if not o.held:
            failures += 1
            ET.SubElement(case, "failure", message=o.text.strip(), type="budget")
    cases.set("tests", str(len(outcomes) + (1 if error else 0)))
    cases.set("failures", str(failures))
    cases.set("errors", str(errors))
    root = ET.Element("testsuites")
    root.append(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
