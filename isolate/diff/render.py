"""A ``BundleDiff`` as plain text (the terminal) or Markdown (a review comment)."""

from __future__ import annotations

from isolate.diff.compare import BundleDiff, Changed


def _size(n: int) -> str:
    sign = "+" if n > 0 else "-" if n < 0 else "±"
    n = abs(n)
    text = f"{n} B" if n < 10_000 else f"{n / 1e3:.1f} kB" if n < 10_000_000 else \
        f"{n / 1e6:.1f} MB"
    return sign + text


def _short(sha: object) -> str:
    return str(sha)[:12] if sha else "-"


def _lines(d: BundleDiff) -> list[tuple[str, list[str]]]:
    """(section title, its lines) for every section that has something to say."""
    sections: list[tuple[str, list[str]]] = []
    dists = [f"+ {n} {v} ({_short(s)})" for n, v, s in d.distributions_added]
    dists += [f"- {n} {v} ({_short(s)})" for n, v, s in d.distributions_removed]
    dists += [f"~ {c.what} {c.old[0]} -> {c.new[0]}" + (
        f" (same version, sha256 {_short(c.old[1])} -> {_short(c.new[1])})"
        if c.old[0] == c.new[0] else "") for c in d.distributions_changed]
    sections.append(("distributions", dists))

    def changed(items: tuple[Changed, ...], short: bool = False) -> list[str]:
        fmt = _short if short else str
        return [f"~ {c.what}: {fmt(c.old) if c.old is not None else '(none)'} -> "
                f"{fmt(c.new) if c.new is not None else '(none)'}" for c in items]

    sections.append(("interpreter", changed(d.interpreter)))
    sections.append(("floors", changed(d.floors)))
    sections.append(("vendored libraries", changed(d.vendored, short=True)))
    sections.append(("launchers", [f"+ {n}" for n in d.launchers_added]
                     + [f"- {n}" for n in d.launchers_removed]))
    sections.append(("files", [f"{f.owner}: +{f.added} -{f.removed} ~{f.changed} "
                               f"({_size(f.size_delta)})" for f in d.files]))
    sections.append(("test overlay", changed(d.tests_overlay, short=True)))
    sections.append(("inputs", changed(d.inputs, short=True)))
    return [(t, lines) for t, lines in sections if lines]


def render_text(d: BundleDiff) -> str:
    if d.identical:
        return f"identical: {d.old} and {d.new}\n"
    out = [f"--- {d.old}", f"+++ {d.new}"]
    for title, lines in _lines(d):
        out.append(f"{title}:")
        out += [f"  {line}" for line in lines]
    return "\n".join(out) + "\n"


def render_markdown(d: BundleDiff) -> str:
    if d.identical:
        return f"**Runtime diff**: `{d.old}` and `{d.new}` are identical.\n"
    out = [f"### Runtime diff: `{d.old}` → `{d.new}`", ""]
    for title, lines in _lines(d):
        if title == "files":
            out += ["**files** (per owner)", "", "| owner | added | removed | changed | size |",
                    "|---|---:|---:|---:|---:|"]
            out += [f"| {f.owner} | {f.added} | {f.removed} | {f.changed} | "
                    f"{_size(f.size_delta)} |" for f in d.files]
            out.append("")
            continue
        out.append(f"**{title}**")
        out.append("")
        out += [f"- `{line}`" for line in lines]
        out.append("")
    return "\n".join(out)
