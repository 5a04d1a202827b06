"""Plan a matrix: which cells, which executor for each, and the predicted verdict.

Pure: reads only the manifest and host profiles given to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from isolate import compat
from isolate.errors import InputError
from isolate.model.manifest import Manifest
from isolate.model.profiles import HostProfile
from isolate.model.results import Prediction

EXECUTORS = {"local": "local", "debootstrap": "rootfs", "static": "static"}


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedCell:
    host: HostProfile
    executor: str  # local | rootfs | static
    prediction: Prediction
    required: bool = False  # the runtime profile names the host in [target] hosts


def predict(manifest: Manifest, host: HostProfile) -> Prediction:
    """The predicted verdict of ``manifest``'s runtime on ``host`` (see ``isolate.compat``)."""
    return compat.predict(arch=manifest.arch, elf=manifest.elf,
                          python_version=manifest.interpreter.version, host=host)


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
        cells.append(PlannedCell(
            host=h, executor=EXECUTORS[h.provision.method], prediction=predict(manifest, h),
            required=compat.is_required(manifest.contract.required_hosts, h.id)))
    if shard is not None:
        i, n = shard
        cells = cells[i - 1::n]
    return cells
