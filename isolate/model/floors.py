"""Floors: the newest symbol version a runtime needs from each library the host provides.

A host provides glibc, libstdc++ and libgcc_s (the allow-list in
``isolate/bundle/elf_allowlist.toml``). Each exports versioned symbols, and an ELF file
records the versions it needs in ``.gnu.version_r``. A *floor* is the highest of those
versions over a whole runtime, per kind:

========  =====================  ==========================
kind      symbol versions        provided by
========  =====================  ==========================
glibc     ``GLIBC_2.34``         libc.so.6, libm.so.6, ...
glibcxx   ``GLIBCXX_3.4.30``     libstdc++.so.6
cxxabi    ``CXXABI_1.3.13``      libstdc++.so.6
gcc       ``GCC_12.0.0``         libgcc_s.so.1
========  =====================  ==========================

The same kind names are the keys of a runtime profile's ``[target]`` (the highest
version the runtime may need) and of a host profile's ``[libc]``/``[gcc_runtime]`` (the
highest version the host ships), so that the bundle's contract check and the matrix's
prediction compare the same things with the same rule (``exceeds``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from isolate.model.document import Reader


@dataclass(frozen=True, kw_only=True, slots=True)
class FloorKind:
    name: str  # "glibc"
    prefix: str  # "GLIBC_"
    library: str  # what people call the provider, for messages
    sonames: frozenset[str] | None  # providers whose needs count; None: any file

    def version_of(self, symbol_version: str) -> str | None:
        """``"2.34"`` for ``"GLIBC_2.34"``; None for names of other kinds (GLIBC_PRIVATE)."""
        m = _NUMERIC.match(symbol_version)
        if m is None or m.group(1) != self.prefix:
            return None
        return m.group(2)


_NUMERIC = re.compile(r"^([A-Z]+_)(\d+(?:\.\d+)+)$")
# Any numbered symbol version: GLIBC_2.34, LIBVIRT_6.10.0, LIBVIRT_QEMU_1.2.3, ...
_SYMBOL_VERSION = re.compile(r"^([A-Z][A-Z0-9_]*?_)(\d+(?:\.\d+)+)$")


def split_symbol_version(name: str) -> tuple[str, str] | None:
    """``("LIBVIRT_QEMU_", "1.2.3")`` for ``"LIBVIRT_QEMU_1.2.3"``; None for
    unnumbered names (GLIBC_PRIVATE)."""
    m = _SYMBOL_VERSION.match(name)
    return (m.group(1), m.group(2)) if m else None

# glibc's versions count whichever glibc library a file needs them from (libc, libm,
# libpthread, ...); the GCC runtime's only from its own sonames, so that a wheel that
# ships a renamed private copy of libstdc++ does not raise the host's floor.
KINDS: tuple[FloorKind, ...] = (
    FloorKind(name="glibc", prefix="GLIBC_", library="glibc", sonames=None),
    FloorKind(name="glibcxx", prefix="GLIBCXX_", library="libstdc++",
              sonames=frozenset({"libstdc++.so.6"})),
    FloorKind(name="cxxabi", prefix="CXXABI_", library="libstdc++ (C++ ABI)",
              sonames=frozenset({"libstdc++.so.6"})),
    FloorKind(name="gcc", prefix="GCC_", library="libgcc_s",
              sonames=frozenset({"libgcc_s.so.1"})),
)
KIND_NAMES = tuple(k.name for k in KINDS)
GCC_RUNTIME_KINDS = ("glibcxx", "cxxabi", "gcc")
_VERSION = re.compile(r"^\d+(\.\d+)+$")


def kind(name: str) -> FloorKind:
    return next(k for k in KINDS if k.name == name)


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def version_key(text: str) -> tuple[int, ...]:
    """``"3.4.30"`` -> ``(3, 4, 30)``; trailing zeros do not matter (``7.0.0`` == ``7``)."""
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def exceeds(needed: str, available: str) -> bool:
    """True when a runtime that needs ``needed`` cannot run with ``available``."""
    return version_key(needed) > version_key(available)


def classify(soname: str, symbol_version: str) -> tuple[str, str] | None:
    """``(kind, version)`` for a version a file needs from ``soname``, or None."""
    for k in KINDS:
        version = k.version_of(symbol_version)
        if version is not None:
            if k.sonames is not None and soname not in k.sonames:
                return None
            return k.name, version
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Floor:
    """The highest version of one kind a runtime needs, and the file that needs it."""

    kind: str  # one of KIND_NAMES
    version: str  # "2.34"
    symbol: str  # "GLIBC_2.34"
    file: str  # bundle-relative POSIX path

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "symbol": self.symbol, "file": self.file}

    @classmethod
    def read(cls, kind_name: str, r: Reader) -> Floor:
        return cls(kind=kind_name, version=r.value("version", str),
                   symbol=r.value("symbol", str), file=r.value("file", str))

    def describe(self) -> str:
        return f"{kind(self.kind).library} {self.version} ({self.symbol} in {self.file})"
