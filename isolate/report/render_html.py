"""The results as one self-contained HTML page: inline CSS, no script, no external asset.

A summary, then a matrix with one row per host (host, executor, predicted, observed,
equivalent) and, under each row, a ``<details>`` drill-down with the differing tests and
fingerprint fields, the failing tests, the fingerprints and the output tail. Every state
is said in words as well as in colour. The layout is the Jinja2 template
``templates/report.html.j2`` (autoescaped); this module only builds the view of the data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from isolate import __version__
from isolate.model.results import Cell, Results, prediction_mismatch
from isolate.report import (
    cell_problems,
    declared,
    difference_text,
    equivalence_word,
    headline,
    is_observed,
    not_run_reason,
    notes_text,
    printable,
    problems,
    required_text,
    role_word,
    shorten,
    status_word,
)

MAX_ROWS = 1000  # per list in a drill-down; the JSON results have them all
MAX_TAIL = 20_000  # characters of output tail shown
MAX_VALUE = 4_000  # characters of one fingerprint value shown


@dataclass(frozen=True, kw_only=True, slots=True)
class Badge:
    text: str
    tone: str  # ok | bad | warn | muted | info


@dataclass(frozen=True, kw_only=True, slots=True)
class Field:
    name: str
    value: str
    block: bool  # show as preformatted text


@dataclass(frozen=True, kw_only=True, slots=True)
class Listing:
    """A table in a drill-down, cut at MAX_ROWS."""

    rows: tuple[tuple[str, ...], ...]
    more: int


@dataclass(frozen=True, kw_only=True, slots=True)
class CellView:
    host: str
    host_name: str
    executor: str
    role: str  # required | informative | "" (the runtime names no required hosts)
    baseline: bool
    mismatch: bool
    problems: tuple[str, ...]
    predicted: Badge
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    unavailable: tuple[str, ...]  # features whose host library is absent or too old
    observed: Badge
    counts: tuple[tuple[str, int], ...]
    observed_note: str
    seconds: float
    equivalent: Badge
    equivalent_note: str
    diff_tests: Listing
    diff_fields: Listing
    failing: Listing
    host_facts: tuple[Field, ...]
    host_fingerprint: tuple[Field, ...]
    runtime_fingerprint: tuple[Field, ...]
    output_tail: str
    open_tail: bool
    details_label: str


def _value(v: Any) -> str:
    """A fingerprint value as text: strings as they are, a small flat mapping on one line
    (``family glibc, version 2.36``), anything else as indented JSON."""
    if isinstance(v, str):
        return v
    if (isinstance(v, Mapping) and len(v) <= 4
            and all(isinstance(x, str | int | float | bool) or x is None for x in v.values())):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return json.dumps(v, indent=1, sort_keys=True, default=str)


def _fields(mapping: Mapping[str, Any]) -> tuple[Field, ...]:
    out = []
    for key in sorted(mapping):
        text = shorten(printable(_value(mapping[key])), MAX_VALUE)
        out.append(Field(name=printable(str(key)), value=text, block="\n" in text or len(text) > 90))
    return tuple(out)


def _listing(rows: list[tuple[str, ...]]) -> Listing:
    return Listing(rows=tuple(tuple(printable(x) for x in r) for r in rows[:MAX_ROWS]),
                   more=max(0, len(rows) - MAX_ROWS))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _cell_view(cell: Cell, results: Results) -> CellView:
    baseline = results.baseline
    obs = cell.observed
    verdict = cell.predicted.verdict
    predicted = Badge(text=verdict, tone="ok" if verdict == "compatible" else "bad")
    observed_tone = {"passed": "ok", "failed": "bad", "error": "bad"}.get(obs.status, "muted")
    observed = Badge(text=status_word(cell), tone=observed_tone)
    if not is_observed(cell):
        note = not_run_reason(cell)
    elif obs.status == "error":
        note = obs.reason or "the test command crashed or timed out"
    else:
        note = obs.reason or ""
    if obs.notes:
        note = "; ".join(x for x in (note, notes_text(cell)) if x)
    word = equivalence_word(cell)
    eq_tone = {"yes": "ok", "yes (baseline)": "ok", "not equivalent": "bad"}.get(word, "muted")
    if cell.equivalent is None and not is_observed(cell):
        eq_note = "no tests ran on this host"
    elif cell.equivalent is None:
        eq_note = "no baseline: no observed cell passed"
    elif cell.baseline:
        eq_note = "the cell every other cell is compared with"
    elif cell.equivalent:
        eq_note = f"every test outcome and runtime fingerprint field matches {baseline}"
    else:
        eq_note = f"{difference_text(cell)} from {baseline}"
    diff_tests = _listing([(t, a, b) for t, a, b in cell.differences.tests])
    diff_fields = _listing([(f, _value(a), _value(b)) for f, a, b in cell.differences.fingerprint])
    failing = _listing([(t, o) for t, o in sorted(obs.tests.items()) if o in ("failed", "error")])
    tail = printable(obs.output_tail)
    if len(tail) > MAX_TAIL:
        tail = f"[... {len(tail) - MAX_TAIL:,} earlier characters cut]\n" + tail[-MAX_TAIL:]
    label = []
    if cell.differences.tests:
        label.append(_plural(len(cell.differences.tests), "differing test"))
    if cell.differences.fingerprint:
        label.append(_plural(len(cell.differences.fingerprint), "differing fingerprint field"))
    if failing.rows and not cell.differences.tests:
        label.append(_plural(len(failing.rows) + failing.more, "failing test"))
    if tail and obs.status in ("failed", "error"):
        label.append("output tail")
    label.append("fingerprints")
    return CellView(
        host=printable(cell.host), host_name=printable(cell.host_name),
        executor=printable(cell.executor), role=role_word(cell, results),
        baseline=cell.baseline, mismatch=prediction_mismatch(cell),
        problems=cell_problems(cell, baseline, declared=declared(results)),
        predicted=predicted, reasons=tuple(printable(r) for r in cell.predicted.reasons),
        warnings=tuple(printable(w) for w in cell.predicted.warnings),
        unavailable=tuple(printable(u) for u in cell.predicted.unavailable),
        observed=observed, counts=tuple(obs.counts.items()) if is_observed(cell) else (),
        observed_note=printable(note), seconds=obs.seconds,
        equivalent=Badge(text=word, tone=eq_tone), equivalent_note=eq_note,
        diff_tests=diff_tests, diff_fields=diff_fields, failing=failing,
        host_facts=_fields(cell.host_facts), host_fingerprint=_fields(obs.host),
        runtime_fingerprint=_fields(obs.runtime), output_tail=tail,
        open_tail=obs.status == "error", details_label=", ".join(label))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("isolate.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)


def render_html(results: Results) -> str:
    cells = results.cells
    observed = [c for c in cells if is_observed(c)]
    bundle = results.bundle
    main_keys = ("name", "runtime", "version", "glibc_floor", "manifest_sha256")
    stats = [
        ("cells", len(cells), "info"),
        ("passed", sum(c.observed.status == "passed" for c in cells), "ok"),
        ("failed", sum(c.observed.status in ("failed", "error") for c in cells), "bad"),
        ("not run", len(cells) - len(observed), "muted"),
        ("equivalent", sum(c.equivalent is True for c in cells), "ok"),
        ("not equivalent", sum(c.equivalent is False for c in cells), "bad"),
        ("prediction mismatches", sum(prediction_mismatch(c) for c in cells), "warn"),
        ("required", sum(c.required for c in cells), "info"),
        ("required predicted only", sum(c.required and not is_observed(c) for c in cells),
         "warn"),
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=printable(str(bundle.get("name") or "results")),
        bundle_name=printable(str(bundle.get("name") or "?")),
        runtime=printable(str(bundle.get("runtime") or "")),
        version=printable(str(bundle.get("version") or "")),
        glibc_floor=printable(str(bundle.get("glibc_floor") or "none")),
        manifest_sha256=printable(str(bundle.get("manifest_sha256") or "?")),
        bundle_extra=_fields({k: v for k, v in bundle.items() if k not in main_keys}),
        baseline=printable(results.baseline or ""),
        observed_count=len(observed),
        stats=stats,
        problems=tuple(printable(p) for p in problems(results)),
        headline=printable(headline(results).partition(": ")[2]),
        required_text=printable(required_text(results)),
        required_hosts=printable(", ".join(results.required_hosts)),
        cells=[_cell_view(c, results) for c in cells],
        tool_version=printable(results.tool_version or "?"),
        report_version=__version__,
        max_rows=MAX_ROWS,
    )
