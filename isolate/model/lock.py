"""Locks: pip-compile's hashed requirements format with an isolate header.

The body is exactly what pip-compile (or uv) wrote; the header records what the lock
was made from, so that ``isolate lock --check`` can tell, without network, that a
profile changed, and which part.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

HEADER_MARK = "# isolate-lock:"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(\w+):([0-9a-f]+)")


@dataclass(frozen=True, kw_only=True, slots=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]  # "sha256:..." sorted
    text: str  # the block as written, comments included

    @property
    def key(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, kw_only=True, slots=True)
class LockInputs:
    """Everything a lock depends on. Its hash decides whether a lock is fresh."""

    profile: str
    kind: str  # "runtime" or "tests"
    python: str
    arch: str
    glibc: str
    requirements: tuple[str, ...]
    test_requirements: tuple[str, ...]
    constraints_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "kind": self.kind,
            "python": self.python,
            "arch": self.arch,
            "glibc": self.glibc,
            "requirements": list(self.requirements),
            "test_requirements": list(self.test_requirements),
            "constraints_sha256": self.constraints_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LockInputs:
        return cls(
            profile=str(data["profile"]),
            kind=str(data["kind"]),
            python=str(data["python"]),
            arch=str(data["arch"]),
            glibc=str(data["glibc"]),
            requirements=tuple(data["requirements"]),
            test_requirements=tuple(data["test_requirements"]),
            constraints_sha256=data.get("constraints_sha256"),
        )

    @property
    def sha256(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def describe_changes(self, old: LockInputs) -> list[str]:
        """What changed from ``old`` to ``self``, one line each."""
        out = []
        for key in ("python", "arch", "glibc", "constraints_sha256"):
            a, b = getattr(old, key), getattr(self, key)
            if a != b:
                out.append(f"{key}: {a} -> {b}")
        for key in ("requirements", "test_requirements"):
            a, b = set(getattr(old, key)), set(getattr(self, key))
            out += [f"{key}: removed {r}" for r in sorted(a - b)]
            out += [f"{key}: added {r}" for r in sorted(b - a)]
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class LockHeader:
    inputs: LockInputs
    profile_path: str
    profile_sha256: str
    backend: str
    platform: str

    def render(self) -> str:
        i = self.inputs
        lines = [
            f"# Lock of isolate runtime profile {i.profile!r} ({i.kind}).",
            f"# Profile: {self.profile_path} (sha256 {self.profile_sha256})",
            f"# Resolved for CPython {i.python} on {self.platform}, glibc floor {i.glibc},"
            f" by {self.backend}.",
            f"# Regenerate with: isolate lock {i.profile}",
            "# Install with: pip install --require-hashes --no-deps -r <this file>",
            HEADER_MARK + " " + json.dumps(
                {"inputs": i.to_dict(), "inputs_sha256": i.sha256}, sort_keys=True
            ),
            "#",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True, slots=True)
class LockFile:
    inputs: LockInputs | None
    inputs_sha256: str | None
    pins: tuple[Pin, ...]
    preamble: tuple[str, ...]  # option lines such as --index-url, outside any block

    def by_name(self) -> dict[str, Pin]:
        return {p.name: p for p in self.pins}


def parse_lock(text: str) -> LockFile:
    """Parse a pip-compile style lock. Raises ``ValueError`` naming the bad line."""
    inputs = None
    inputs_sha = None
    pins: list[Pin] = []
    preamble: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if not block:
            return
        first = block[0]
        m = _PIN.match(first)
        if not m:
            raise ValueError(f"not a pinned requirement: {first.strip()!r}")
        joined = " ".join(block)
        hashes = tuple(sorted(f"{a}:{h}" for a, h in _HASH.findall(joined)))
        pins.append(
            Pin(
                name=canonicalize_name(m.group(1)),
                version=m.group(3),
                hashes=hashes,
                text="\n".join(block) + "\n",
            )
        )
        block.clear()

    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith(HEADER_MARK):
            try:
                data = json.loads(line[len(HEADER_MARK):])
                inputs = LockInputs.from_dict(data["inputs"])
                inputs_sha = str(data["inputs_sha256"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {lineno}: unreadable isolate header ({exc})") from exc
            continue
        if not line.strip():
            continue
        if line[0] in " \t":  # continuation: hashes and annotations
            if block:
                block.append(line)
            continue
        if line.startswith("#"):  # top-level comment: ends a block, not part of one
            flush()
            continue
        if line.startswith("-"):
            flush()
            preamble.append(line)
            continue
        flush()
        block.append(line)
    flush()
    return LockFile(inputs=inputs, inputs_sha256=inputs_sha, pins=tuple(pins),
                    preamble=tuple(preamble))


def render_body(pins: Iterable[Pin]) -> str:
    return "".join(p.text for p in sorted(pins, key=lambda p: p.name))


def summary_lines(pins: Iterable[Pin]) -> list[str]:
    """One comparable line per pin: name==version and its hashes."""
    return [f"{p.key} {' '.join(p.hashes)}" for p in sorted(pins, key=lambda p: p.name)]
