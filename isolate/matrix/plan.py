"""Plan a matrix: which cells, which executor for each, and the predicted verdict.

Pure: reads only the manifest and host profiles given to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from isolate.errors import InputError
from isolate.model.manifest import Manifest
from isolate.model.profiles import HostProfile, version_tuple
from isolate.model.results import Prediction

EXECUTORS = {"local": "local", "debootstrap": "rootfs", "static": "static"}


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedCell:
    host: HostProfile
    executor: str  # local | rootfs | static
    prediction: Prediction


def predict(manifest: Manifest, host: HostProfile) -> Prediction:
    reasons: list[str] = []
    warnings: list[str] = []
    if host.arch != manifest.arch:
        reasons.append(f"architecture: the runtime is {manifest.arch}, the host is {host.arch}")
    floor = manifest.elf.glibc_floor
    if host.libc.family != "glibc":
        reasons.append(f"libc: the runtime is linked against glibc; {host.id} uses "
                       f"{host.libc.family} {host.libc.version}")
    elif floor and version_tuple(floor) > host.libc.version_tuple:
        reasons.append(
            f"glibc: the runtime needs glibc {floor} ({manifest.elf.glibc_floor_symbol} in "
            f"{manifest.elf.glibc_floor_file}); {host.id} has {host.libc.version}")
    for lib in manifest.elf.host_libraries:
        soname = lib.get("soname", "?")
        if lib.get("required", True):
            warnings.append(f"host library {soname} must be installed on the host "
                            f"({lib.get('purpose') or 'declared by the runtime profile'})")
        else:
            warnings.append(f"optional host library {soname}: "
                            f"{lib.get('purpose') or 'declared by the runtime profile'}")
    if reasons:
        return Prediction(verdict="incompatible", reasons=tuple(reasons),
                          warnings=tuple(warnings))
    facts = [f"glibc {host.libc.version} >= floor {floor}" if floor else "no glibc floor",
             f"arch {host.arch}",
             f"the runtime carries CPython {manifest.interpreter.version}; the host's "
             f"{'Python ' + host.python if host.python else 'lack of Python'} is not used"]
    return Prediction(verdict="compatible", reasons=tuple(facts), warnings=tuple(warnings))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text}: expected I/N, e.g. 1/3") from None
    if not 1 <= i <= n:
        raise InputError(f"--shard {text}: I must be between 1 and N")
    return i, n


def plan(manifest: Manifest, hosts: Sequence[HostProfile],
         shard: tuple[int, int] | None = None) -> list[PlannedCell]:
    seen: set[str] = set()
    cells = []
    for h in hosts:
        if h.id in seen:
            raise InputError(f"host {h.id} is listed twice")
        seen.add(h.id)
        cells.append(PlannedCell(host=h, executor=EXECUTORS[h.provision.method],
                                 prediction=predict(manifest, h)))
    if shard is not None:
        i, n = shard
        cells = cells[i - 1::n]
    return cells
