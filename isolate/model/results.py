"""Matrix results: one cell per (bundle, host), versioned JSON (``isolate.results/2``).

A cell holds the prediction made from the manifest and the host profile, the observation
(every test's outcome and two fingerprints) and, once a baseline is chosen, whether it
is equivalent to the baseline and how it differs. See docs/results.rst for the schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from isolate.errors import DocumentError
from isolate.model.document import Reader, kind_of
from isolate.model.hostlibs import HostLibraryVerdict, ObservedHostLibrary

# /2: the runtime profile's required hosts (``required_hosts``, each cell's ``required``)
SCHEMA = "isolate.results/2"
OUTCOMES = ("passed", "failed", "error", "skipped")
STATUSES = ("passed", "failed", "error", "not-run")
VERDICTS = ("compatible", "incompatible")
# Fingerprint fields that legitimately differ from host to host and are not compared.
HOST_ONLY_FIELDS = ("host",)


class ResultsError(DocumentError):
    """A results file cannot be read; the message names the file and the key path
    (``r.json: cells[0].observed.status: missing``)."""

    default_hint = "pass the RESULTS.json written by `isolate matrix -o`"


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Prediction:
    verdict: str  # compatible | incompatible
    reasons: tuple[str, ...] = ()  # why incompatible (or the facts that make it compatible)
    warnings: tuple[str, ...] = ()  # e.g. an optional host library that is missing
    # per host library the runtime declares: provided, too-old, absent (or unused)
    host_libraries: tuple[HostLibraryVerdict, ...] = ()

    @property
    def unavailable(self) -> tuple[str, ...]:
        """The features missing on the host: ``libvirt driver unavailable: ... absent``."""
        return tuple(v.unavailable() for v in self.host_libraries if not v.ok)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "reasons": list(self.reasons),
                               "warnings": list(self.warnings)}
        if self.host_libraries:
            out["host_libraries"] = [v.to_dict() for v in self.host_libraries]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Prediction:
        return cls.read(Reader(d, ResultsError))

    @classmethod
    def read(cls, r: Reader) -> Prediction:
        return cls(verdict=r.value("verdict", str), reasons=r.value("reasons", tuple, ()),
                   warnings=r.value("warnings", tuple, ()),
                   host_libraries=r.value("host_libraries", lambda v: tuple(
                       HostLibraryVerdict.from_dict(x) for x in v), ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class Observation:
    status: str  # passed | failed | error | not-run
    reason: str | None = None  # for error and not-run: what happened, and how to fix it
    tests: Mapping[str, str] = field(default_factory=dict)  # test id -> outcome
    runtime: Mapping[str, Any] = field(default_factory=dict)  # runtime fingerprint
    host: Mapping[str, Any] = field(default_factory=dict)  # host fingerprint
    output_tail: str = ""
    seconds: float = 0.0
    # unittest | pytest | stestr | junit | exit-code ("" : not observed, or older results)
    outcomes_from: str = ""
    notes: tuple[str, ...] = ()  # worth knowing, not failures (e.g. outcomes from the exit code)
    # per declared host library: whether the host resolved it (file, version) and how its
    # smoke check went; empty when the runtime declares none or the cell was not observed
    host_libraries: tuple[ObservedHostLibrary, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for outcome in self.tests.values():
            out[outcome] = out.get(outcome, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "counts": self.counts,
                "seconds": round(self.seconds, 3), "runtime_fingerprint": dict(self.runtime),
                "host_fingerprint": dict(self.host), "output_tail": self.output_tail,
                "outcomes_from": self.outcomes_from, "notes": list(self.notes),
                **({"host_libraries": [h.to_dict() for h in self.host_libraries]}
                   if self.host_libraries else {}),
                "tests": dict(sorted(self.tests.items()))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Observation:
        return cls.read(Reader(d, ResultsError))

    @classmethod
    def read(cls, r: Reader) -> Observation:
        return cls(status=r.value("status", str), reason=r.raw("reason", None),
                   tests=r.value("tests", dict, {}),
                   runtime=r.value("runtime_fingerprint", dict, {}),
                   host=r.value("host_fingerprint", dict, {}),
                   output_tail=r.value("output_tail", str, ""),
                   seconds=r.value("seconds", float, 0.0),
                   outcomes_from=r.value("outcomes_from", lambda v: str(v or ""), ""),
                   notes=r.value("notes", lambda v: _strs(v or ()), ()),
                   host_libraries=r.value("host_libraries", lambda v: tuple(
                       ObservedHostLibrary.from_dict(h) for h in v or ()), ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class Differences:
    tests: tuple[tuple[str, str, str], ...] = ()  # (test id, baseline outcome, this outcome)
    fingerprint: tuple[tuple[str, Any, Any], ...] = ()  # (field, baseline value, this value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tests": [{"test": t, "baseline": a, "cell": b} for t, a, b in self.tests],
            "fingerprint": [{"field": f, "baseline": a, "cell": b} for f, a, b in self.fingerprint],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Differences:
        return cls.read(Reader(d, ResultsError))

    @classmethod
    def read(cls, r: Reader) -> Differences:
        return cls(tests=r.objs("tests", lambda x: (x.raw("test"), x.raw("baseline"),
                                                    x.raw("cell")), ()),
                   fingerprint=r.objs("fingerprint", lambda x: (x.raw("field"), x.raw("baseline"),
                                                                x.raw("cell")), ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    host: str  # host profile id
    host_name: str
    executor: str  # local | rootfs | static
    predicted: Prediction
    observed: Observation
    equivalent: bool | None = None  # None: not observed, or no baseline
    baseline: bool = False
    differences: Differences = field(default_factory=Differences)
    host_facts: Mapping[str, Any] = field(default_factory=dict)  # from the host profile
    # The runtime profile names this host in [target] hosts: the runtime must run here.
    # False: informative (or the profile names no required hosts).
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "host_name": self.host_name, "executor": self.executor,
                "required": self.required,
                "host_facts": dict(self.host_facts), "predicted": self.predicted.to_dict(),
                "observed": self.observed.to_dict(), "equivalent": self.equivalent,
                "baseline": self.baseline, "differences": self.differences.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        return cls.read(Reader(d, ResultsError))

    @classmethod
    def read(cls, r: Reader) -> Cell:
        host = r.value("host", str)
        return cls(host=host, host_name=r.value("host_name", str, host),
                   executor=r.value("executor", str), host_facts=r.value("host_facts", dict, {}),
                   predicted=r.obj("predicted", Prediction.read),
                   observed=r.obj("observed", Observation.read),
                   equivalent=r.raw("equivalent", None),
                   baseline=r.value("baseline", bool, False),
                   differences=r.obj("differences", Differences.read, Differences()),
                   required=r.value("required", _boolean))


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ResultsError(f"expected true or false, got {value!r}")
    return value


def _shard(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    i, n = str(value).split("/")
    return int(i), int(n)


def _host_patterns(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise ResultsError(f"expected a list of strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Results:
    bundle: Mapping[str, Any]  # name, runtime, version, manifest_sha256, glibc_floor, ...
    cells: tuple[Cell, ...]
    baseline: str | None = None
    shard: tuple[int, int] | None = None  # (i, n) when this file holds one shard
    tool_version: str = ""
    # The runtime profile's [target] hosts (ids and fnmatch patterns) as the bundle's
    # manifest recorded them; empty: it names none, and every cell is judged alike.
    required_hosts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "tool_version": self.tool_version, "bundle": dict(self.bundle),
                "required_hosts": list(self.required_hosts),
                "baseline": self.baseline,
                "shard": None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}",
                "summary": summary(self.cells),
                "cells": [c.to_dict() for c in self.cells]}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Results:
        return cls.read(Reader(d, ResultsError))

    @classmethod
    def read(cls, r: Reader) -> Results:
        schema = r.raw("schema", None)
        if schema != SCHEMA:
            raise ResultsError(f"schema is {schema!r}, this isolate reads {SCHEMA!r}")
        return cls(bundle=r.value("bundle", dict), baseline=r.raw("baseline", None),
                   shard=r.value("shard", _shard, None),
                   tool_version=r.value("tool_version", str, ""),
                   required_hosts=r.value("required_hosts", _host_patterns),
                   cells=r.objs("cells", Cell.read))

    @classmethod
    def loads(cls, text: str, *, where: str = "results") -> Results:
        """The results in ``text``; ``ResultsError`` naming ``where`` and the key path."""
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ResultsError(f"not JSON ({exc})", where=where) from exc
        if not isinstance(d, dict):
            raise ResultsError(f"not a JSON object, but {kind_of(d)}", where=where)
        try:
            return cls.from_dict(d)
        except ResultsError as exc:
            raise exc.located(where) from exc


def summary(cells: Iterable[Cell]) -> dict[str, int]:
    cells = list(cells)
    return {
        "cells": len(cells),
        "predicted_compatible": sum(c.predicted.verdict == "compatible" for c in cells),
        "observed_passed": sum(c.observed.status == "passed" for c in cells),
        "observed_failed": sum(c.observed.status in ("failed", "error") for c in cells),
        "not_run": sum(c.observed.status == "not-run" for c in cells),
        "equivalent": sum(c.equivalent is True for c in cells),
        "not_equivalent": sum(c.equivalent is False for c in cells),
        "prediction_mismatches": sum(prediction_mismatch(c) for c in cells),
        "required": sum(c.required for c in cells),
        "required_observed": sum(c.required and c.observed.status != "not-run" for c in cells),
        "required_predicted_only": sum(c.required and c.observed.status == "not-run"
                                       for c in cells),
    }


def prediction_mismatch(cell: Cell) -> bool:
    """Observed, and the observation contradicts the prediction."""
    if cell.observed.status == "not-run":
        return False
    ok = cell.observed.status == "passed"
    return ok != (cell.predicted.verdict == "compatible")


def compare(baseline: Cell, cell: Cell) -> Differences:
    """Test by test and fingerprint field by field. A cell whose tests never ran (the
    runtime did not start, or the command failed before its first test) differs by its
    status and reason, not by every baseline test being "absent"."""
    a, b = baseline.observed.tests, cell.observed.tests
    tests = tuple((t, a.get(t, "absent"), b.get(t, "absent"))
                  for t in sorted(set(a) | set(b)) if a.get(t) != b.get(t))
    if not b and cell.observed.status == "error":
        tests = ()
    fa, fb = baseline.observed.runtime, cell.observed.runtime
    if not fb:  # the runtime never started: its tests and status tell the difference
        return Differences(tests=tests, fingerprint=(("started", True, False),))
    fp = tuple((k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
               if k not in HOST_ONLY_FIELDS and fa.get(k) != fb.get(k))
    return Differences(tests=tests, fingerprint=fp)


def with_equivalence(cells: Iterable[Cell], baseline: str | None = None) -> tuple[
        str | None, tuple[Cell, ...]]:
    """Choose a baseline (``baseline`` or the first passed cell) and compare every observed
    cell with it, test by test and runtime-fingerprint field by field."""
    cells = tuple(cells)
    observed = [c for c in cells if c.observed.status not in ("not-run",) and c.observed.tests]
    base = next((c for c in observed if c.host == baseline), None) if baseline else None
    if base is None:
        base = next((c for c in observed if c.observed.status == "passed"), None)
    if base is None:
        return None, tuple(replace(c, equivalent=None, baseline=False,
                                   differences=Differences()) for c in cells)
    out = []
    for c in cells:
        if c.observed.status == "not-run":
            out.append(replace(c, equivalent=None, baseline=False, differences=Differences()))
            continue
        diff = compare(base, c)
        out.append(replace(c, baseline=c.host == base.host, differences=diff,
                           equivalent=not diff.tests and not diff.fingerprint
                           and c.observed.status == base.observed.status))
    return base.host, tuple(out)
