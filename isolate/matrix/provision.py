"""Provision the root filesystems of a matrix's hosts ahead of its cells.

A cell of a ``debootstrap`` host provisions its root filesystem when it starts, once per
machine (``isolate.provision.rootfs`` caches it). On a fresh machine that is minutes of
download per host: ``isolate provision`` does it before the matrix, for instance while
the bundle builds, so the cells find every root filesystem ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isolate.errors import IsolateError
from isolate.model.profiles import HostProfile
from isolate.proc import Runner
from isolate.progress import NoProgress, Progress
from isolate.provision.rootfs import RootfsSpec, ensure_rootfs


@dataclass(frozen=True, kw_only=True, slots=True)
class Provisioned:
    spec: RootfsSpec
    hosts: tuple[str, ...]  # the host profiles that use it
    path: Path | None = None  # the root filesystem, when ready
    error: IsolateError | None = None


def rootfs_spec(host: HostProfile) -> RootfsSpec | None:
    """The root filesystem a host profile runs in; None when it is not a rootfs host."""
    p = host.provision
    if p.method != "debootstrap":
        return None
    return RootfsSpec(suite=p.suite or "", variant=p.variant, packages=p.packages, mirror=p.mirror)


def provision_hosts(hosts: Sequence[HostProfile], *, runner: Runner, jobs: int = 2,
                    progress: Progress | None = None) -> list[Provisioned]:
    """Make (or find in the cache) the root filesystem of every rootfs host in ``hosts``,
    ``jobs`` at a time. A failure is returned with its spec, not raised: the others go on."""
    progress = progress or NoProgress()
    users: dict[RootfsSpec, list[str]] = {}
    for h in hosts:
        spec = rootfs_spec(h)
        if spec is not None:
            users.setdefault(spec, []).append(h.id)
    progress.step("root filesystems", len(users))

    def one(spec: RootfsSpec) -> Provisioned:
        ids = tuple(users[spec])
        try:
            path = ensure_rootfs(spec, runner=runner, progress=progress)
        except IsolateError as exc:
            return Provisioned(spec=spec, hosts=ids, error=exc)
        finally:
            progress.advance()
        return Provisioned(spec=spec, hosts=ids, path=path)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, users))
