"""What ``isolate verify`` found: findings, per-check runs and the versioned report.

Frozen data only, no I/O. ``VerifyReport.to_dict`` is the JSON report (schema
``isolate.verify/1``):

```
{"schema": "isolate.verify/1", "bundle": PATH, "name": NAME|null, "host": ID|null,
 "ok": BOOL, "summary": {"errors": N, "notes": N},
 "checks": [{"name": CHECK, "seconds": S, "errors": N, "notes": N,
             "skipped": REASON|null, "detail": TEXT,
             "cached": STORED-AT|null}],
 "timings": {CHECK: S, ..., "total": S},
 "findings": [{"severity": "error"|"note", "check": CHECK,
               "path": BUNDLE-RELATIVE PATH|null, "message": TEXT}]}
```

``cached`` is set on a probe whose result was taken from the probe cache: the time (ISO
8601 UTC) it ran on the same bytes, host and probes; its ``seconds`` are then 0.
Checks run concurrently, so a check's seconds are the wall time of its own work, not
shares of the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "isolate.verify/1"

ERROR = "error"  # breaks the bundle: verify exits 1
NOTE = "note"  # worth knowing, harmless: verify still exits 0
SEVERITIES = (ERROR, NOTE)

# Check names, in report order.
MANIFEST = "manifest"
SCAN = "scan"
INTEGRITY = "integrity"
RELOCATION = "relocation"
ELF = "elf"
HOST = "host"
ISOLATION = "isolation"
CHILDREN = "children"
IMPORTS = "imports"
CHECK_ORDER = (MANIFEST, SCAN, INTEGRITY, RELOCATION, ELF, HOST, ISOLATION, CHILDREN, IMPORTS)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    severity: str  # "error" | "note"
    check: str
    path: str | None  # bundle-relative POSIX path; None when it concerns the whole bundle
    message: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        order = CHECK_ORDER.index(self.check) if self.check in CHECK_ORDER else len(CHECK_ORDER)
        return order, self.path or "", self.severity, self.message

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "path": self.path,
                "message": self.message}


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckRun:
    """One check as it ran: its wall time, or why it was skipped."""

    name: str
    seconds: float
    skipped: str | None = None
    detail: str = ""  # what it covered, e.g. "21424 files, 410.3 MB"
    # when the result was stored (ISO 8601 UTC), if it was taken from the probe cache
    # rather than run now (``isolate.verify.probe_cache``)
    cached: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyReport:
    bundle: str  # the path that was verified, as given
    name: str | None  # the bundle's name from its manifest
    host: str | None  # the host profile checked against
    findings: tuple[Finding, ...]
    checks: tuple[CheckRun, ...]
    seconds: float  # wall time of the whole verification
    timings: Mapping[str, float] = field(default_factory=dict)  # extra steps, e.g. unpack

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def notes(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == NOTE)

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, check: str, severity: str) -> int:
        return sum(1 for f in self.findings if f.check == check and f.severity == severity)

    def to_dict(self) -> dict[str, Any]:
        timings = {**self.timings, **{c.name: c.seconds for c in self.checks if c.skipped is None},
                   "total": self.seconds}
        return {
            "schema": SCHEMA,
            "bundle": self.bundle,
            "name": self.name,
            "host": self.host,
            "ok": self.ok,
            "summary": {"errors": len(self.errors), "notes": len(self.notes)},
            "checks": [
                {"name": c.name, "seconds": c.seconds, "errors": self.count(c.name, ERROR),
                 "notes": self.count(c.name, NOTE), "skipped": c.skipped, "detail": c.detail,
                 "cached": c.cached}
                for c in self.checks
            ],
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "findings": [f.to_dict() for f in self.findings],
        }
