"""Helpers of the package tests (the small runtime's and Nova's): the files of a .deb and
an .rpm, and a .deb installed, run and removed in a copy of a Debian 12 root filesystem."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from isolate.proc import Runner
from isolate.provision.rootfs import Bind, RootfsSpec, bwrap_argv, ensure_rootfs, missing_tools

Inside = Callable[..., subprocess.CompletedProcess[str]]


def sh(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=900, **kwargs)  # type: ignore[call-overload]


def deb_of(out: Path) -> Path:
    (deb,) = out.glob("*.deb")
    return deb


def rpm_of(out: Path) -> Path:
    (rpm,) = out.glob("*.rpm")
    return rpm


def deb_files(deb: Path) -> set[str]:
    """The paths a .deb holds, as absolute paths (directories without a trailing /)."""
    paths = set()
    for line in sh(["dpkg-deb", "-c", deb]).stdout.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        paths.add(name.removeprefix(".").rstrip("/") or "/")
    return paths


def rpm_files(rpm: Path) -> set[str]:
    return set(sh(["rpm", "-qlp", rpm]).stdout.splitlines())


def debian_only(files: set[str]) -> set[str]:
    """What a .deb holds that the .rpm does not: Debian's own files (copyright, changelog,
    lintian overrides) and the shared directories the .deb names and the .rpm does not own."""
    return {p for p in files
            if p.startswith("/usr/share/") or p in ("/", "/opt", "/usr", "/usr/bin", "/usr/share")}


def tree(root: Path) -> set[str]:
    """Every path of a root filesystem but dpkg's database, logs, caches and mounts."""
    skip = ("var/lib/dpkg/", "var/log/", "var/cache/", "tmp/", "run/", "proc/", "dev/")
    return {rel for p in root.rglob("*")
            if not (rel := p.relative_to(root).as_posix()).startswith(skip)}


def lintian_errors(deb: Path) -> str | None:
    """lintian's output when it finds an error in ``deb``, else None."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (apt-get install lintian)")
    r = sh(["lintian", "--fail-on", "error", "--no-tag-display-limit", deb])
    if r.returncode != 0 or " E: " in r.stdout or r.stdout.startswith("E: "):
        return r.stdout + r.stderr
    return None


@contextmanager
def debian_12_copy(tmp_path: Path, packages: Path) -> Iterator[Inside]:
    """A writable copy of the cached Debian 12 root filesystem, with ``packages`` bound
    at /opt/isolate/pkgs; yields ``inside(*argv)``, which runs a command in it as root.
    On leaving, nothing but dpkg's database may differ from the copy as it was made."""
    problems = missing_tools()
    if problems:
        pytest.skip("cannot run root filesystems here: " + "; ".join(problems))
    cached = ensure_rootfs(RootfsSpec(suite="bookworm"), runner=Runner())
    root = tmp_path / "root"  # the cache is read-only: dpkg works on a copy
    assert sh(["cp", "-a", cached, root]).returncode == 0
    before = tree(root)
    pkgs = Bind(source=packages, dest="/opt/isolate/pkgs")

    def inside(*command: str) -> subprocess.CompletedProcess[str]:
        argv = bwrap_argv(root, list(command), binds=[pkgs], root_writable=True)
        return sh(argv, env={"PATH": "/usr/bin:/bin"})

    yield inside
    left = tree(root) ^ before
    assert not left, sorted(left)[:20]  # every file it installed is gone, nothing was left
