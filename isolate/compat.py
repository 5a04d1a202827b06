"""Whether a runtime can run on a host, and which hosts it must run on.

The one rule that ``isolate bundle`` (refusing a runtime that misses a required host)
and ``isolate matrix`` (predicting every cell) share. Pure: it reads only the ELF facts of
a runtime and host profiles.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from isolate.model import floors, hostlibs
from isolate.model.floors import Floor
from isolate.model.hostlibs import HostLibraryVerdict
from isolate.model.manifest import ElfFacts
from isolate.model.profiles import HostProfile
from isolate.model.results import Prediction


@dataclass(frozen=True, kw_only=True, slots=True)
class Shortfall:
    """A floor a host does not meet, or cannot be said to meet."""

    need: Floor  # what the runtime needs
    host_has: str | None  # the host's highest version of that kind; None: its profile is silent


def shortfalls(host: HostProfile, needs: Iterable[Floor]) -> tuple[Shortfall, ...]:
    """The floors of ``needs`` a glibc host does not meet (or whose profile is silent)."""
    out: list[Shortfall] = []
    for need in needs:
        have = host.provides(need.kind)
        if have is None or floors.exceeds(need.version, have):
            out.append(Shortfall(need=need, host_has=have))
    return tuple(out)


def predict(*, arch: str, elf: ElfFacts, python_version: str, host: HostProfile) -> Prediction:
    """Compatible or not, with the reasons: arch, libc family, glibc floor, GCC runtime."""
    reasons: list[str] = []
    warnings: list[str] = []
    if host.arch != arch:
        reasons.append(f"architecture: the runtime is {arch}, the host is {host.arch}")
    needs = [f for k in floors.KIND_NAMES if (f := elf.floor(k)) is not None]
    glibc = elf.floor("glibc")
    checked: list[str] = []
    if host.libc.family != "glibc":
        reasons.append(f"libc: the runtime is linked against glibc; {host.id} uses "
                       f"{host.libc.family} {host.libc.version}")
    else:
        short = shortfalls(host, needs)
        for s in short:
            k = floors.kind(s.need.kind)
            if s.need.kind == "glibc":
                reasons.append(
                    f"glibc: the runtime needs glibc {s.need.version} ({s.need.symbol} in "
                    f"{s.need.file}); {host.id} has {host.libc.version}")
            elif s.host_has is None:
                warnings.append(f"{k.library}: the runtime needs {s.need.symbol} "
                                f"({s.need.file}); the host profile of {host.id} does not say "
                                f"which {k.prefix}* versions it ships, so this is not checked")
            else:
                reasons.append(f"host library: the runtime needs {k.library} {s.need.symbol} "
                               f"(in {s.need.file}); {host.id} ships up to "
                               f"{k.prefix}{s.host_has}")
        short_kinds = {s.need.kind for s in short}
        checked = [f"{floors.kind(n.kind).prefix}{host.provides(n.kind)} >= {n.symbol}"
                   for n in needs if n.kind != "glibc" and n.kind not in short_kinds]
    verdicts = host_library_verdicts(elf, host)
    provided = []
    for v in verdicts:
        if v.status == "provided":
            provided.append(v.describe())
        elif v.status in ("absent", "too-old"):
            if v.required:
                reasons.append(f"host library: {v.describe()} (required: "
                               f"{v.purpose or 'declared by the runtime profile'})")
            else:
                warnings.append(v.unavailable())
    for lib in () if elf.host_floors else elf.host_libraries:  # manifests without floors
        soname = lib.get("soname", "?")
        if lib.get("required", True):
            warnings.append(f"host library {soname} must be installed on the host "
                            f"({lib.get('purpose') or 'declared by the runtime profile'})")
        else:
            warnings.append(f"optional host library {soname}: "
                            f"{lib.get('purpose') or 'declared by the runtime profile'}")
    if reasons:
        return Prediction(verdict="incompatible", reasons=tuple(reasons),
                          warnings=tuple(warnings), host_libraries=verdicts)
    facts = [f"glibc {host.libc.version} >= floor {glibc.version}" if glibc else "no glibc floor",
             *checked,
             *provided,
             f"arch {host.arch}",
             f"the runtime carries CPython {python_version}; the host's "
             f"{'Python ' + host.python if host.python else 'lack of Python'} is not used"]
    return Prediction(verdict="compatible", reasons=tuple(facts), warnings=tuple(warnings),
                      host_libraries=verdicts)


def host_library_verdicts(elf: ElfFacts, host: HostProfile) -> tuple[HostLibraryVerdict, ...]:
    """Per host library the runtime declares (and some file needs): its verdict on
    ``host`` (see ``isolate.model.hostlibs``). Unused declarations are left out."""
    return tuple(v for v in (hostlibs.verdict(f, host.host_library(f.soname))
                             for f in elf.host_floors) if v.status != "unused")


def floor_violations(per_file: Iterable[Floor], ceilings: dict[str, str]) -> tuple[Floor, ...]:
    """Every (file, kind) whose need is above the ceiling of its kind, in file order."""
    return tuple(f for f in per_file
                 if f.kind in ceilings and floors.exceeds(f.version, ceilings[f.kind]))


def is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def is_required(patterns: Sequence[str], host_id: str) -> bool:
    """True when ``host_id`` is one of the required ids or matches a required pattern."""
    return any(fnmatch.fnmatchcase(host_id, p) for p in patterns)


@dataclass(frozen=True, kw_only=True, slots=True)
class RequiredMatch:
    """What a profile's required-hosts list matches among the known host ids."""

    hosts: tuple[str, ...]  # the matched ids, in the order of the known ids
    unknown: tuple[str, ...]  # exact ids no host profile has
    unmatched: tuple[str, ...]  # patterns that match no known id


def match_required(patterns: Sequence[str], known: Sequence[str]) -> RequiredMatch:
    unknown = tuple(p for p in patterns if not is_pattern(p) and p not in known)
    unmatched = tuple(p for p in patterns if is_pattern(p)
                      and not any(fnmatch.fnmatchcase(h, p) for h in known))
    hosts = tuple(h for h in known if is_required(patterns, h))
    return RequiredMatch(hosts=hosts, unknown=unknown, unmatched=unmatched)
