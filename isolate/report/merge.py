"""Read results files and join the shards of one matrix run into one ``Results``.

Shards must be results of the same bundle (the same ``bundle.manifest_sha256``) and must
not share a host. Equivalence is recomputed over all cells, because each shard chose its
baseline among its own cells only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from isolate import __version__
from isolate.errors import InputError
from isolate.model.results import SCHEMA, Results, ResultsError, with_equivalence

_RERUN = (f"re-run `isolate matrix` with this isolate ({__version__}) to write {SCHEMA}, "
          "or report it with the isolate version that wrote it")


def read_results(path: Path) -> Results:
    """One results file; ``InputError`` naming the file when it cannot be used."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read results file {path}: {exc.strerror or exc}",
                         hint="pass the RESULTS.json written by `isolate matrix -o`") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a results file (not UTF-8 text: {exc.reason})",
                         hint="pass the RESULTS.json written by `isolate matrix -o`") from exc
    try:
        results = Results.loads(text, where=str(path))
    except ResultsError as exc:
        raise _diagnose(path, text, exc) from exc
    if not results.cells:
        raise InputError(f"{path}: the results hold no cells",
                         hint="the matrix ran no host; check its --hosts and --shard")
    return results


def _diagnose(path: Path, text: str, exc: ResultsError) -> InputError:
    try:
        data = json.loads(text)
    except ValueError:
        return InputError(str(exc), hint="pass the RESULTS.json written by `isolate matrix -o`")
    if isinstance(data, dict) and data.get("schema") != SCHEMA:
        found = data.get("schema")
        wrote = f" (written by isolate {data['tool_version']})" if data.get("tool_version") else ""
        return InputError(f"{path}: schema is {found!r}{wrote}; this isolate reads {SCHEMA!r}",
                          hint=_RERUN)
    return InputError(str(exc), hint=f"the file does not follow {SCHEMA}; {_RERUN}")


def _bundle_label(results: Results) -> str:
    b = results.bundle
    sha = str(b.get("manifest_sha256") or "?")
    return f"bundle {b.get('name', '?')} (manifest sha256 {sha[:16]})"


def merge_results(named: Sequence[tuple[str, Results]], *,
                  baseline: str | None = None) -> tuple[Results, tuple[str, ...]]:
    """Join ``(file name, results)`` pairs; return the merged results and notes.

    The baseline is ``baseline`` when given, else the first baseline any input recorded,
    else the first passed cell. Files that all carry a shard are ordered by shard index.
    Raises ``InputError`` naming both files for results of different bundles, duplicate
    host cells, or the same shard twice."""
    if not named:
        raise InputError("no results files given")
    items = list(named)
    notes: list[str] = []
    shards = [r.shard for _, r in items]
    if len(items) > 1 and all(s is not None for s in shards):
        items.sort(key=lambda nr: nr[1].shard or (0, 0))
        totals = {s[1] for s in shards if s is not None}
        if len(totals) > 1:
            raise InputError("the files are shards of different splits: " + ", ".join(
                f"{n} is shard {r.shard[0]}/{r.shard[1]}" for n, r in items if r.shard),
                hint="merge the shards of one `isolate matrix --shard I/N` run")
        seen: dict[int, str] = {}
        for name, r in items:
            assert r.shard is not None
            if r.shard[0] in seen:
                raise InputError(f"{seen[r.shard[0]]} and {name} are both shard "
                                 f"{r.shard[0]}/{r.shard[1]}",
                                 hint="pass each shard's results once")
            seen[r.shard[0]] = name
        total = totals.pop()
        missing = [str(i) for i in range(1, total + 1) if i not in seen]
        if missing:
            notes.append(f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of {total} "
                         "not given: the merged results are incomplete")

    first_name, first = items[0]
    sha = first.bundle.get("manifest_sha256")
    owner: dict[str, str] = {}
    cells = []
    for name, r in items:
        other = r.bundle.get("manifest_sha256")
        if other != sha or (sha is None and dict(r.bundle) != dict(first.bundle)):
            raise InputError(f"{first_name} and {name} are results of different bundles: "
                             f"{first_name} has {_bundle_label(first)}, {name} has "
                             f"{_bundle_label(r)}",
                             hint="merge only the shards of one `isolate matrix` run")
        for cell in r.cells:
            if cell.host in owner:
                where = (f"{name} has it twice" if owner[cell.host] == name
                         else f"in {owner[cell.host]} and in {name}")
                raise InputError(f"duplicate cell for host {cell.host!r}: {where}",
                                 hint="each host may appear in only one shard; pass each "
                                      "results file once")
            owner[cell.host] = name
            cells.append(cell)

    hosts = [c.host for c in cells]
    if baseline is not None:
        chosen = next((c for c in cells if c.host == baseline), None)
        if chosen is None:
            raise InputError(f"--baseline {baseline}: no such host in the results",
                             hint="hosts in the results: " + ", ".join(hosts))
        if chosen.observed.status == "not-run" or not chosen.observed.tests:
            observed = [c.host for c in cells if c.observed.status != "not-run" and c.observed.tests]
            raise InputError(f"--baseline {baseline}: that cell was not observed "
                             f"({chosen.observed.status}, {len(chosen.observed.tests)} tests) "
                             "and cannot be the baseline",
                             hint="observed hosts: " + (", ".join(observed) or "none"))
    else:
        baseline = next((r.baseline for _, r in items if r.baseline in hosts), None)
    chosen_host, final = with_equivalence(cells, baseline)
    merged = Results(bundle=dict(first.bundle), cells=final, baseline=chosen_host,
                     shard=first.shard if len(items) == 1 else None,
                     tool_version=first.tool_version, required_hosts=first.required_hosts)
    return merged, tuple(notes)


def load_and_merge(paths: Sequence[Path], *,
                   baseline: str | None = None) -> tuple[Results, tuple[str, ...]]:
    """Read every file (each must be usable) and merge them."""
    return merge_results([(str(p), read_results(p)) for p in paths], baseline=baseline)
