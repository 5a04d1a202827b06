"""Debian root filesystems made with debootstrap, cached, and run under bubblewrap.

A root filesystem is built once per (suite, variant, packages, mirror) and kept under
the cache folder with that key; builds go to a temporary directory that is renamed into
place, under a file lock, so concurrent runs share one build and a killed build leaves
nothing half-made. Commands run under bubblewrap with the root filesystem read-only, a
private /tmp, no network, and the bundle bound at a fixed path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock

from isolate.cache import cache_root
from isolate.errors import EnvironmentProblem
from isolate.proc import Runner
from isolate.progress import NoProgress, Progress

READY = ".isolate-rootfs-ready"
# Bundles and work directories are bound below this directory, which the root
# filesystem has empty and bubblewrap covers with a tmpfs (the root is read-only).
MOUNT_BASE = "/opt/isolate"


@dataclass(frozen=True, kw_only=True, slots=True)
class RootfsSpec:
    suite: str
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    mirror: str = "http://deb.debian.org/debian"

    @property
    def key(self) -> str:
        blob = json.dumps({"suite": self.suite, "variant": self.variant,
                           "packages": sorted(self.packages), "mirror": self.mirror},
                          sort_keys=True)
        return f"{self.suite}-{self.variant}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Bind:
    source: Path
    dest: str
    writable: bool = False


def missing_tools() -> list[str]:
    """What this machine lacks to provision and run root filesystems; empty when ready."""
    problems = []
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        problems.append("debootstrap is not installed (apt-get install debootstrap)")
    if shutil.which("bwrap") is None:
        problems.append("bubblewrap is not installed (apt-get install bubblewrap)")
    if os.geteuid() != 0:
        problems.append("debootstrap needs root (run as root, or with sudo)")
    return problems


def ensure_rootfs(spec: RootfsSpec, *, runner: Runner, cache: Path | None = None,
                  progress: Progress | None = None) -> Path:
    """The root filesystem for ``spec``, built on first use."""
    progress = progress or NoProgress()
    base = (cache or cache_root()) / "rootfs"
    root = base / spec.key
    if (root / READY).exists():
        return root
    problems = missing_tools()
    if problems:
        raise EnvironmentProblem(f"cannot provision a Debian {spec.suite} root filesystem",
                                 details="\n".join(f"  {p}" for p in problems),
                                 hint="install the tools named above")
    base.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(base / f"{spec.key}.lock")):
        if (root / READY).exists():
            return root
        tmp = base / f"{spec.key}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        progress.note(f"building a Debian {spec.suite} {spec.variant} root filesystem "
                      "with debootstrap (once; cached)")
        argv: list[str | Path] = ["debootstrap", f"--variant={spec.variant}"]
        if spec.packages:
            argv.append("--include=" + ",".join(sorted(spec.packages)))
        argv += [spec.suite, tmp, spec.mirror]
        try:
            runner.run(argv, timeout=1800, what=f"debootstrap {spec.suite}")
            # apt's caches are not part of the host being simulated
            shutil.rmtree(tmp / "var/cache/apt/archives", ignore_errors=True)
            (tmp / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
            (tmp / MOUNT_BASE.lstrip("/")).mkdir(parents=True, exist_ok=True)
            (tmp / READY).write_text(json.dumps({"suite": spec.suite, "variant": spec.variant,
                                                 "packages": list(spec.packages)}) + "\n")
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def bwrap_argv(rootfs: Path, command: Sequence[str], *, binds: Sequence[Bind] = (),
               env: Mapping[str, str] | None = None, cwd: str = "/",
               network: bool = False, root_writable: bool = False) -> list[str]:
    """A bubblewrap command line: ``rootfs`` read-only as /, private /tmp, no network.

    ``root_writable`` binds ``rootfs`` writable (a scratch copy, never the cache: a
    package manager installs into it)."""
    root_bind = "--bind" if root_writable else "--ro-bind"
    argv = ["bwrap", root_bind, str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var/tmp",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            # as root, the command must not keep capabilities: with CAP_SYS_ADMIN it
            # could remount the read-only root and write into the cached filesystem
            "--cap-drop", "ALL",
            "--hostname", "isolate-host", "--clearenv"]
    if not network:
        argv.append("--unshare-net")
    argv += ["--tmpfs", MOUNT_BASE]
    for b in binds:
        if not b.dest.startswith(MOUNT_BASE + "/"):
            raise ValueError(f"bind destinations must be below {MOUNT_BASE}: {b.dest}")
        argv += ["--bind" if b.writable else "--ro-bind", str(b.source), b.dest]
    base_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/tmp", "LANG": "C.UTF-8"}
    for k, v in {**base_env, **(env or {})}.items():
        argv += ["--setenv", k, v]
    argv += ["--chdir", cwd, "--", *command]
    return argv
