"""The results as GitHub-flavoured Markdown for a CI step summary, kept under 1 MiB.

A verdict, the totals, a table like the HTML matrix, then per non-equivalent or failing
cell the differing (or failing) tests and fingerprint fields. Long lists end with
"... and N more"; if the page would still outgrow its budget the rest of it is left out,
and the page says so.
"""

from __future__ import annotations

import re

from isolate.model.results import Cell, Results, prediction_mismatch
from isolate.report import (
    counts_text,
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
    totals_text,
)

LIMIT = 1024 * 1024  # GitHub's step summary limit, in bytes
BUDGET = LIMIT - 16 * 1024  # what the content may use; the rest is for the closing note
MAX_ITEMS = 100  # per list
MAX_TEXT = 300  # characters of one reason, test id or value

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&$])")


def md_text(text: str, limit: int = MAX_TEXT) -> str:
    """Plain text that Markdown shows as is: one line, punctuation escaped (no HTML, no
    links, no emphasis)."""
    one_line = " ".join(shorten(printable(text), limit).split())
    return _SPECIAL.sub(r"\\\1", one_line)


def md_code(text: str, *, table: bool = False, limit: int = MAX_TEXT) -> str:
    """A code span holding ``text`` verbatim (on one line)."""
    s = " ".join(shorten(printable(text), limit).split())
    if table:
        s = s.replace("|", "\\|")
    fence = "`"
    while fence in s:
        fence += "`"
    pad = " " if s.startswith("`") or s.endswith("`") or not s else ""
    return f"{fence}{pad}{s}{pad}{fence}"


class _Page:
    """Lines under a byte budget; once full, further lines are dropped and counted."""

    def __init__(self, budget: int):
        self.lines: list[str] = []
        self.size = 0
        self.budget = budget
        self.full = False

    def add(self, line: str = "") -> bool:
        n = len(line.encode("utf-8")) + 1
        if self.full or self.size + n > self.budget:
            self.full = True
            return False
        self.lines.append(line)
        self.size += n
        return True


def _row(cell: Cell, results: Results) -> str:
    host = md_code(cell.host, table=True) + (" **baseline**" if cell.baseline else "")
    role = role_word(cell, results)
    if role:
        host += " **required**" if role == "required" else " (informative)"
    predicted = f"**{md_text(cell.predicted.verdict)}**"
    if cell.predicted.unavailable:
        predicted += "; " + md_text("; ".join(cell.predicted.unavailable))
    if cell.predicted.reasons:
        predicted += (" — " if cell.predicted.unavailable else ": ") + md_text(
            "; ".join(cell.predicted.reasons))
    if prediction_mismatch(cell):
        predicted += " — :warning: **prediction mismatch**"
    if is_observed(cell):
        observed = f"**{status_word(cell)}** ({counts_text(cell)})"
        if cell.observed.status == "error" and cell.observed.reason:
            observed += ": " + md_text(cell.observed.reason)
        if cell.observed.notes:
            observed += " — note: " + md_text(notes_text(cell))
        if cell.observed.host_libraries:
            observed += " — host libraries: " + md_text(
                "; ".join(h.describe() for h in cell.observed.host_libraries))
    else:
        observed = "**not run**: " + md_text(not_run_reason(cell))
    word = equivalence_word(cell)
    equivalent = f"**{word}**" if cell.equivalent is False else word
    if cell.equivalent is None:
        equivalent = f"— ({word})"
    return f"| {host} | {md_text(cell.executor)} | {predicted} | {observed} | {equivalent} |"


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _more(page: _Page, shown: int, total: int, what: str) -> None:
    if total > shown:
        page.add(f"- ... and {total - shown:,} more {what} (list truncated to keep this summary "
                 "under 1 MiB; the JSON results have them all)")


def _cell_section(page: _Page, cell: Cell, baseline: str | None) -> None:
    diff = cell.differences
    failing = sorted((t, o) for t, o in cell.observed.tests.items() if o in ("failed", "error"))
    if cell.equivalent is not False and not (failing and cell.observed.status in ("failed", "error")):
        return
    head = f"### {md_code(cell.host)}: "
    if cell.equivalent is False:
        head += f"not equivalent to {md_code(baseline or '?')}"
    else:
        head += f"observed {status_word(cell)}"
    page.add(head)
    page.add()
    if diff.tests:
        page.add(f"{_count(len(diff.tests), 'differing test')} (baseline outcome → this cell's "
                 "outcome):")
        page.add()
        shown = 0
        for test, a, b in diff.tests[:MAX_ITEMS]:
            if not page.add(f"- {md_code(test)}: {a} → **{b}**"):
                break
            shown += 1
        _more(page, shown, len(diff.tests), "differing tests")
        page.add()
    elif failing:
        page.add(f"{_count(len(failing), 'test')} did not pass:")
        page.add()
        shown = 0
        for test, outcome in failing[:MAX_ITEMS]:
            if not page.add(f"- {md_code(test)}: **{outcome}**"):
                break
            shown += 1
        _more(page, shown, len(failing), "failing tests")
        page.add()
    if diff.fingerprint:
        page.add(f"{_count(len(diff.fingerprint), 'differing runtime fingerprint field')}:")
        page.add()
        shown = 0
        for name, a, b in diff.fingerprint[:MAX_ITEMS]:
            if not page.add(f"- {md_code(name)}: {md_code(str(a))} → {md_code(str(b))}"):
                break
            shown += 1
        _more(page, shown, len(diff.fingerprint), "differing fields")
        page.add()


def render_markdown(results: Results) -> str:
    page = _Page(BUDGET)
    bundle = results.bundle
    page.add(f"## Compatibility report: {md_code(str(bundle.get('name') or '?'))}")
    page.add()
    found = problems(results)
    word, _colon, rest = headline(results).partition(": ")
    page.add(f"**{word}**: {md_text(rest)}.")
    for p in found:
        page.add(f"- {md_text(p)}")
    page.add()
    page.add(md_text(required_text(results)))
    page.add()
    page.add(f"glibc floor **{md_text(str(bundle.get('glibc_floor') or 'none'))}** · baseline "
             f"{md_code(results.baseline) if results.baseline else '**none**'} · "
             f"{md_text(totals_text(results))}")
    page.add()
    page.add("| Host | Executor | Predicted | Observed | Equivalent |")
    page.add("|---|---|---|---|---|")
    rows = 0
    for cell in results.cells:
        if not page.add(_row(cell, results)):
            break
        rows += 1
    page.add()
    if rows < len(results.cells):
        page.lines.append(f"... and {len(results.cells) - rows:,} more cells (table truncated to "
                          "keep this summary under 1 MiB; the JSON results have them all)")
    elif any(c.equivalent is False or c.observed.status in ("failed", "error") for c in results.cells):
        page.add("Cells that differ from the baseline or failed:")
        page.add()
        for cell in results.cells:
            _cell_section(page, cell, results.baseline)
            if page.full:
                # The budget leaves room for this note.
                page.lines.append("")
                page.lines.append(f"**Summary truncated** at cell {md_code(cell.host)} to stay "
                                  "under 1 MiB; the JSON results and the HTML report have "
                                  "everything.")
                break
    return "\n".join(page.lines) + "\n"
