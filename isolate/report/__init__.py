"""``isolate report``: read matrix results, merge shards, render them for people and CI.

The data flows in one direction: read each results file (``merge.read_results``), join
them and recompute equivalence (``merge.merge_results``), render (``render_json``,
``render_html``, ``render_markdown``, ``render_junit``: each returns text and touches no
disk), then write every output atomically. ``build_report`` and ``merge_files`` are the
two entry points the CLI calls; they are the only functions here that read or write files.

This module also holds the vocabulary every renderer shares (the words for verdicts,
statuses and equivalence, and what makes a report fail), so that the text summary, the
page, the Markdown and the JUnit XML say the same thing in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isolate.fsutil import write_atomic
from isolate.model.results import Cell, Results, prediction_mismatch

STATUS_WORDS = {"passed": "passed", "failed": "failed", "error": "error", "not-run": "not run"}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """``text`` without terminal colour codes and with other control characters shown as
    ``\\xNN``: safe in XML 1.0, HTML and Markdown, and readable."""
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit:,} more characters]"


def status_word(cell: Cell) -> str:
    """passed, failed, error or not run."""
    return STATUS_WORDS.get(cell.observed.status, cell.observed.status)


def is_observed(cell: Cell) -> bool:
    return cell.observed.status != "not-run"


def equivalence_word(cell: Cell) -> str:
    """yes (baseline), yes, not equivalent, not observed, or no baseline."""
    if cell.equivalent is True:
        return "yes (baseline)" if cell.baseline else "yes"
    if cell.equivalent is False:
        return "not equivalent"
    return "not observed" if not is_observed(cell) else "no baseline"


def counts_text(cell: Cell) -> str:
    c = cell.observed.counts
    return ", ".join(f"{c.get(k, 0):,} {k}" for k in ("passed", "failed", "error", "skipped"))


def not_run_reason(cell: Cell) -> str:
    if cell.observed.reason:
        return cell.observed.reason
    if cell.executor == "static":
        return "static host: predicted only, cannot be provisioned here"
    return "no reason recorded"


def difference_text(cell: Cell) -> str:
    """``2 tests and 1 fingerprint field differ``, ``1 test differs``, ``the status differs``."""
    d = cell.differences
    parts = []
    if d.tests:
        parts.append(f"{len(d.tests):,} test{'s' if len(d.tests) != 1 else ''}")
    if d.fingerprint:
        n = len(d.fingerprint)
        parts.append(f"{n} fingerprint field{'s' if n != 1 else ''}")
    if not parts:
        return "the status differs"
    single = len(parts) == 1 and parts[0].startswith("1 ")
    return " and ".join(parts) + (" differs" if single else " differ")


def cell_problems(cell: Cell, baseline: str | None) -> tuple[str, ...]:
    """Why this cell makes ``isolate report`` exit 1; empty when it does not."""
    out: list[str] = []
    if cell.predicted.verdict == "incompatible" and cell.observed.status in ("failed", "error"):
        return ()  # predicted, and proven: the report shows it, but it is not a regression
    if cell.observed.status in ("failed", "error"):
        out.append(f"observed {cell.observed.status}")
    if cell.equivalent is False:
        out.append(f"not equivalent to {baseline or 'the baseline'} ({difference_text(cell)})")
    if prediction_mismatch(cell):
        out.append(f"predicted {cell.predicted.verdict} but observed {status_word(cell)}")
    return tuple(out)


def problems(results: Results) -> tuple[str, ...]:
    """One line per cell that failed, is not equivalent or contradicts its prediction.

    Not-run cells (static hosts, missing tools) are never problems: the report shows
    them as not observed."""
    lines = []
    for cell in results.cells:
        found = cell_problems(cell, results.baseline)
        if found:
            lines.append(f"{cell.host}: " + "; ".join(found))
    return tuple(lines)


def totals_text(results: Results) -> str:
    cells = results.cells
    observed = [c for c in cells if is_observed(c)]
    passed = sum(c.observed.status == "passed" for c in cells)
    failed = sum(c.observed.status in ("failed", "error") for c in cells)
    mismatches = sum(prediction_mismatch(c) for c in cells)
    return (f"{len(cells)} cells: {passed} passed, {failed} failed, {len(cells) - len(observed)} "
            f"not run; {sum(c.equivalent is True for c in cells)} of {len(observed)} observed "
            f"equivalent; {mismatches} prediction mismatch{'es' if mismatches != 1 else ''}")


def render_text(results: Results) -> str:
    """The short summary the CLI prints: a heading, one line per cell, the totals and
    the verdict."""
    bundle = results.bundle
    floor = bundle.get("glibc_floor") or "none"
    rows = []
    for c in results.cells:
        if is_observed(c):
            observed = f"observed {status_word(c)} ({counts_text(c)})"
            if c.observed.status == "error" and c.observed.reason:
                observed += f": {shorten(printable(c.observed.reason).replace(chr(10), ' '), 120)}"
        else:
            observed = f"not run: {shorten(printable(not_run_reason(c)).replace(chr(10), ' '), 120)}"
        flag = "  [prediction mismatch]" if prediction_mismatch(c) else ""
        rows.append((c.host, c.executor, f"predicted {c.predicted.verdict}",
                     f"equivalent: {equivalence_word(c)}", observed + flag))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = [f"bundle {bundle.get('name', '?')} (glibc floor {floor}), baseline "
             f"{results.baseline or 'none'}"]
    lines += ["  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    return "\n".join(lines) + "\n" + verdict_text(results)


def verdict_text(results: Results) -> str:
    """The totals line, then OK or FAIL with one line per cell that needs attention."""
    lines = [totals_text(results)]
    found = problems(results)
    if found:
        lines.append(f"FAIL: {len(found)} cell{'s' if len(found) != 1 else ''} need"
                     f"{'' if len(found) != 1 else 's'} attention:")
        lines += [f"  {p}" for p in found]
    else:
        lines.append("OK: every observed cell passed, is equivalent to the baseline and matches "
                     "its prediction")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportOutputs:
    """Where to write each rendering; None: not wanted."""

    html: Path | None = None
    markdown: Path | None = None
    junit: Path | None = None
    json: Path | None = None

    def wanted(self) -> tuple[tuple[str, Path], ...]:
        pairs = (("html", self.html), ("markdown", self.markdown), ("junit", self.junit),
                 ("json", self.json))
        return tuple((kind, path) for kind, path in pairs if path is not None)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportOutcome:
    results: Results  # merged, equivalence recomputed
    written: tuple[tuple[str, Path], ...]  # (kind, path) in the order written
    problems: tuple[str, ...]  # why the report fails; empty: it passes
    notes: tuple[str, ...]  # worth knowing, not failures (e.g. shards missing from a merge)
    text: str  # the short text summary: a line per cell, then ``verdict``
    verdict: str  # the totals line, then OK or FAIL and the problems


@dataclass(frozen=True, kw_only=True, slots=True)
class MergeOutcome:
    results: Results
    output: Path
    notes: tuple[str, ...]


def render(results: Results, kind: str) -> str:
    """One rendering of ``results``: html, markdown, junit or json."""
    if kind == "html":
        from isolate.report.render_html import render_html

        return render_html(results)
    if kind == "markdown":
        from isolate.report.render_markdown import render_markdown

        return render_markdown(results)
    if kind == "junit":
        from isolate.report.render_junit import render_junit

        return render_junit(results)
    if kind == "json":
        from isolate.report.render_json import render_json

        return render_json(results)
    raise ValueError(f"unknown report kind {kind!r}")


def build_report(inputs: Sequence[Path], outputs: ReportOutputs, *,
                 baseline: str | None = None) -> ReportOutcome:
    """Read and merge ``inputs``, render every wanted output and write each atomically.

    Everything is rendered before anything is written, so a rendering error leaves no
    output behind. Raises ``InputError`` for unreadable, invalid or incompatible inputs."""
    from isolate.report.merge import load_and_merge

    results, notes = load_and_merge(inputs, baseline=baseline)
    rendered = [(kind, path, render(results, kind)) for kind, path in outputs.wanted()]
    for _kind, path, text in rendered:
        write_atomic(path, text)
    return ReportOutcome(results=results, written=tuple((k, p) for k, p, _ in rendered),
                         problems=problems(results), notes=notes, text=render_text(results),
                         verdict=verdict_text(results))


def merge_files(inputs: Sequence[Path], output: Path, *,
                baseline: str | None = None) -> MergeOutcome:
    """Join shard results of one bundle into ``output`` (schema ``isolate.results/1``)."""
    from isolate.report.merge import load_and_merge
    from isolate.report.render_json import render_json

    results, notes = load_and_merge(inputs, baseline=baseline)
    write_atomic(output, render_json(results))
    return MergeOutcome(results=results, output=output, notes=notes)
