"""Host libraries: what a runtime needs from a library only the host can provide, what
a host ships of it, and the verdict of one against the other.

Some libraries must come from the host (libvirt.so.0: nova-compute talks to the host's
libvirtd through the host's client library). A runtime profile declares them
(``[[host_libraries]]``); the bundle records, per declared soname, which files need it
and the highest numbered symbol version they need from it (libvirt exports
``LIBVIRT_x.y.z``: the release that added the symbol); a host profile says which
version of it the host ships (``[host_libraries]``). ``verdict`` compares them:

========  ==========================================================
provided  the host ships a version at or above the runtime's floor
too-old   the host ships it, older than the floor (names the symbol)
absent    the host profile does not list it
unused    no file of the runtime needs it (a declaration to drop)
========  ==========================================================

A verdict other than ``provided`` makes a cell incompatible only for a library the
runtime profile says is ``required``; otherwise the feature that needs it is unavailable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from isolate.model import floors

STATUSES = ("provided", "too-old", "absent", "unused")


@dataclass(frozen=True, kw_only=True, slots=True)
class HostLibraryFloor:
    """What a runtime needs from one declared host library (recorded in the manifest)."""

    soname: str  # "libvirt.so.0"
    required: bool = True
    purpose: str = ""
    feature: str = ""  # what is unavailable without it ("libvirt driver")
    needed_by: tuple[str, ...] = ()  # bundle-relative files with DT_NEEDED on it
    version: str | None = None  # "6.10.0": the highest numbered version needed
    symbol: str | None = None  # "LIBVIRT_6.10.0"
    file: str | None = None  # the file that needs it (first in path order)

    def to_dict(self) -> dict[str, Any]:
        return {"soname": self.soname, "required": self.required, "purpose": self.purpose,
                "feature": self.feature, "needed_by": list(self.needed_by),
                "version": self.version,
                "symbol": self.symbol, "file": self.file}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HostLibraryFloor:
        def opt(key: str) -> str | None:
            return None if d.get(key) is None else str(d[key])

        return cls(soname=str(d["soname"]), required=bool(d.get("required", True)),
                   purpose=str(d.get("purpose", "")), feature=str(d.get("feature", "")),
                   needed_by=tuple(str(f) for f in d.get("needed_by", ())),
                   version=opt("version"), symbol=opt("symbol"), file=opt("file"))


def library_floors(declared: Iterable[tuple[str, bool, str, str]],
                   needs: Iterable[tuple[str, str, str]]) -> tuple[HostLibraryFloor, ...]:
    """Per declared ``(soname, required, purpose, feature)``, its floor over ``needs``, the
    ``(file, soname, symbol version or "")`` triples of a tree (ties: first file)."""
    by_soname: dict[str, list[tuple[str, str]]] = {}
    for file, soname, symbol in sorted(needs):
        by_soname.setdefault(soname, []).append((file, symbol))
    out = []
    for soname, required, purpose, feature in declared:
        rows = by_soname.get(soname, [])
        best: tuple[tuple[int, ...], str, str, str] | None = None
        for file, symbol in rows:
            split = floors.split_symbol_version(symbol) if symbol else None
            if split is None:
                continue
            key = floors.version_key(split[1])
            if best is None or key > best[0]:
                best = (key, split[1], symbol, file)
        out.append(HostLibraryFloor(
            soname=soname, required=required, purpose=purpose, feature=feature,
            needed_by=tuple(sorted({f for f, _s in rows})),
            version=best[1] if best else None, symbol=best[2] if best else None,
            file=best[3] if best else None))
    return tuple(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class ShippedLibrary:
    """A host library a host profile says the host has (``[host_libraries]``)."""

    soname: str
    version: str  # the release, e.g. "9.0.0": it defines every version up to LIBVIRT_9.0.0
    package: str = ""  # the distribution package that provides it, for messages
    # False: the release ships it but this host has not got it (a minimal root filesystem)
    installed: bool = True
    source: str = ""  # where the fact comes from

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "package": self.package,
                "installed": self.installed, "source": self.source}


@dataclass(frozen=True, kw_only=True, slots=True)
class HostLibraryVerdict:
    soname: str
    status: str  # one of STATUSES
    required: bool
    purpose: str = ""
    feature: str = ""
    need: str | None = None  # the symbol version the runtime needs, e.g. LIBVIRT_6.10.0
    need_file: str | None = None
    host_version: str | None = None  # what the host ships

    @property
    def ok(self) -> bool:
        return self.status in ("provided", "unused")

    def describe(self) -> str:
        """One line for a person: ``libvirt.so.0 absent``, ``... 9.0.0 >= LIBVIRT_6.10.0``."""
        if self.status == "provided":
            need = f" >= {self.need}" if self.need else ""
            return f"{self.soname} {self.host_version}{need}"
        if self.status == "too-old":
            return (f"{self.soname} {self.host_version} is too old: {self.need_file} needs "
                    f"{self.need}")
        if self.status == "unused":
            return f"{self.soname} is declared but no file of the runtime needs it"
        return f"{self.soname} absent"

    def unavailable(self) -> str:
        """``libvirt driver unavailable: libvirt.so.0 absent``."""
        return f"{self.feature or self.soname} unavailable: {self.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {"soname": self.soname, "status": self.status, "required": self.required,
                "purpose": self.purpose, "feature": self.feature, "need": self.need,
                "need_file": self.need_file,
                "host_version": self.host_version}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HostLibraryVerdict:
        def opt(key: str) -> str | None:
            return None if d.get(key) is None else str(d[key])

        return cls(soname=str(d["soname"]), status=str(d["status"]),
                   required=bool(d.get("required", True)), purpose=str(d.get("purpose", "")),
                   feature=str(d.get("feature", "")), need=opt("need"), need_file=opt("need_file"),
                   host_version=opt("host_version"))


def verdict(floor: HostLibraryFloor, shipped: ShippedLibrary | None) -> HostLibraryVerdict:
    if not floor.needed_by:
        status = "unused"
    elif shipped is None:
        status = "absent"
    elif floor.version is not None and floors.exceeds(floor.version, shipped.version):
        status = "too-old"
    else:
        status = "provided"
    return HostLibraryVerdict(soname=floor.soname, status=status, required=floor.required,
                              purpose=floor.purpose, feature=floor.feature,
                              need=floor.symbol, need_file=floor.file,
                              host_version=shipped.version if shipped else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class ObservedHostLibrary:
    """What a matrix cell found of one declared host library on the host it ran on."""

    soname: str
    file: str | None  # where the host has it (a path on the host), None: not found
    version: str | None  # the highest numbered symbol version the file defines
    # the runtime profile's smoke check for it: passed | failed | not-run | "" (none)
    smoke: str = ""
    smoke_output: str = ""  # the last lines of its output when it did not pass

    @property
    def resolved(self) -> bool:
        return self.file is not None

    def describe(self) -> str:
        found = (f"{self.soname} {self.version or '?'} ({self.file})" if self.resolved
                 else f"{self.soname} not found")
        return found + (f", smoke check {self.smoke}" if self.smoke else "")

    def to_dict(self) -> dict[str, Any]:
        return {"soname": self.soname, "file": self.file, "version": self.version,
                "smoke": self.smoke, "smoke_output": self.smoke_output}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ObservedHostLibrary:
        return cls(soname=str(d["soname"]),
                   file=None if d.get("file") is None else str(d["file"]),
                   version=None if d.get("version") is None else str(d["version"]),
                   smoke=str(d.get("smoke", "")), smoke_output=str(d.get("smoke_output", "")))
