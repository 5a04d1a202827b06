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


def notes_text(cell: Cell) -> str:
    """The observation's notes (e.g. "outcomes from the exit code only: ..."), or ""."""
    return "; ".join(cell.observed.notes)


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


def declared(results: Results) -> bool:
    """True when the runtime profile names required hosts ([target] hosts)."""
    return bool(results.required_hosts)


def role_word(cell: Cell, results: Results) -> str:
    """required, informative, or "" when the runtime names no required hosts."""
    if not declared(results):
        return ""
    return "required" if cell.required else "informative"


def cell_problems(cell: Cell, baseline: str | None, *, declared: bool = False) -> tuple[str, ...]:
    """Why this cell makes ``isolate report`` exit 1; empty when it does not.

    With required hosts declared, only required cells can fail the report: a required
    host must be observed passing and equivalent, or, when not observed, be predicted
    compatible. Informative hosts never fail it. Without a declaration every cell is
    judged on what was observed, and a cell that fails as predicted is not a regression.
    """
    if declared and not cell.required:
        return ()
    out: list[str] = []
    failed = cell.observed.status in ("failed", "error")
    incompatible = cell.predicted.verdict == "incompatible"
    if cell.required:
        if not is_observed(cell) and incompatible:
            out.append("required host predicted incompatible, not observed: "
                       + "; ".join(cell.predicted.reasons))
        elif failed:
            out.append(f"required host observed {cell.observed.status}"
                       + (" (as predicted: " + "; ".join(cell.predicted.reasons) + ")"
                          if incompatible else ""))
    else:
        if incompatible and failed:
            return ()  # predicted, and proven: the report shows it, but it is not a regression
        if failed:
            out.append(f"observed {cell.observed.status}")
    if cell.equivalent is False and not (cell.required and failed and incompatible):
        out.append(f"not equivalent to {baseline or 'the baseline'} ({difference_text(cell)})")
    if prediction_mismatch(cell):
        out.append(f"predicted {cell.predicted.verdict} but observed {status_word(cell)}")
    return tuple(out)


def problems(results: Results) -> tuple[str, ...]:
    """One line per cell that fails the report (see ``cell_problems``).

    Not-run cells (static hosts, missing tools) are problems only when the host is
    required and predicted incompatible: otherwise the report shows them as not observed."""
    lines = []
    for cell in results.cells:
        found = cell_problems(cell, results.baseline, declared=declared(results))
        if found:
            lines.append(f"{cell.host}: " + "; ".join(found))
    return tuple(lines)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def totals_text(results: Results) -> str:
    cells = results.cells
    observed = [c for c in cells if is_observed(c)]
    passed = sum(c.observed.status == "passed" for c in cells)
    failed = sum(c.observed.status in ("failed", "error") for c in cells)
    mismatches = sum(prediction_mismatch(c) for c in cells)
    return (f"{len(cells)} cells: {passed} passed, {failed} failed, {len(cells) - len(observed)} "
            f"not run; {sum(c.equivalent is True for c in cells)} of {len(observed)} observed "
            f"equivalent; {mismatches} prediction mismatch{'es' if mismatches != 1 else ''}")


def required_text(results: Results) -> str:
    """``8 required hosts: 5 observed, 3 predicted only; 2 informative`` or, when the
    runtime names none, says so."""
    if not declared(results):
        return ("no required hosts: the runtime profile names none ([target] hosts), so "
                "every cell is judged on what was observed")
    req = [c for c in results.cells if c.required]
    seen = sum(is_observed(c) for c in req)
    only = [c for c in req if not is_observed(c)]
    text = (f"{_plural(len(req), 'required host')} in this matrix: {seen} observed, "
            f"{len(only)} predicted only")
    bad = sum(c.predicted.verdict != "compatible" for c in only)
    if only:
        text += (" (all predicted compatible)" if not bad
                 else f" ({bad} predicted incompatible)")
    informative = len(results.cells) - len(req)
    return text + f"; {_plural(informative, 'informative host')}"


def headline(results: Results) -> str:
    """OK or FAIL in one line: what the exit code of ``isolate report`` means here.

    Never says every observed cell passed when nothing was observed or a cell failed."""
    found = problems(results)
    cells = results.cells
    observed = [c for c in cells if is_observed(c)]
    if not observed:
        seen = f"nothing was observed (0 of {_plural(len(cells), 'cell')} ran)"
    else:
        passed = sum(c.observed.status == "passed" for c in observed)
        as_predicted = sum(c.observed.status != "passed" and c.predicted.verdict == "incompatible"
                           for c in observed)
        other = len(observed) - passed - as_predicted
        seen = f"{passed} passed"
        if as_predicted:
            seen += f", {as_predicted} failed as predicted"
        if other:
            seen += f", {other} failed"
    if found:
        text = (f"FAIL: {_plural(len(found), 'cell')} need{'s' if len(found) == 1 else ''} "
                f"attention; {seen}")
    else:
        text = f"OK: no regressions: {seen}" if observed else f"OK: {seen}"
    not_run = [c for c in cells if not is_observed(c)]
    bad = sum(c.predicted.verdict != "compatible" for c in not_run)
    if not_run and observed:
        text += f"; {len(not_run)} not run" + (f" ({bad} predicted incompatible)" if bad else "")
    elif bad:
        text += f"; {bad} predicted incompatible"
    req_only = sum(c.required and not is_observed(c) for c in cells)
    if req_only:
        text += f"; {_plural(req_only, 'required host')} predicted only"
    return text


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
            if c.observed.notes:
                observed += f" [note: {shorten(printable(notes_text(c)), 120)}]"
        else:
            observed = f"not run: {shorten(printable(not_run_reason(c)).replace(chr(10), ' '), 120)}"
        flag = "  [prediction mismatch]" if prediction_mismatch(c) else ""
        rows.append((c.host, role_word(c, results), c.executor,
                     f"predicted {c.predicted.verdict}", f"equivalent: {equivalence_word(c)}",
                     observed + flag))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(5)]
    lines = [f"bundle {bundle.get('name', '?')} (glibc floor {floor}), baseline "
             f"{results.baseline or 'none'}"]
    lines += ["  " + "  ".join(r[i].ljust(widths[i]) for i in range(5) if widths[i]) + "  "
              + r[5] for r in rows]
    return "\n".join(lines) + "\n" + verdict_text(results)


def verdict_text(results: Results) -> str:
    """The totals and required-hosts lines, then the headline (OK or FAIL) with one line
    per cell that needs attention."""
    lines = [totals_text(results), required_text(results), headline(results)]
    lines += [f"  {p}" for p in problems(results)]
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
    """Join shard results of one bundle into ``output`` (schema ``isolate.results/2``)."""
    from isolate.report.merge import load_and_merge
    from isolate.report.render_json import render_json

    results, notes = load_and_merge(inputs, baseline=baseline)
    write_atomic(output, render_json(results))
    return MergeOutcome(results=results, output=output, notes=notes)
