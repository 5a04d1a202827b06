"""Results of the probes that start the bundled interpreter, kept for the same bytes on the same host.

The isolation, children and import probes take seconds; what they find depends only on
the bytes of the tree, where it lies, the host (kernel, C library, its shared
libraries) and the probes themselves. ``Key`` holds a sha256 of each. A check's result
is stored only when it found no error (a failing check always runs again), and used
only when every part of the key is equal. The tree's part is computed from this run's
own scan of the bytes on disk (or in the archive), never from the manifest: one changed
byte, mode, link, file or directory is a miss.

What the cache cannot do is make a tampered bundle pass: the integrity, relocation, ELF
and host checks, and the manifest's own sha256, are never cached and fail on a tampered
tree whatever the cache holds. A cache entry is trusted only when it is a regular file
that belongs, like its directory, to the user running verify and that nobody else can
write; otherwise it is ignored (the probes run) and ``Lookup.ignored`` says why. Someone
who can write as that user can change isolate itself, so nothing stronger is claimed.

Entries live in ``cache_root()/verify/<slot>.json``; a slot is the bundle's location,
manifest, host and probes, so verifying a bundle again after it changed replaces its
entry. ``isolate verify --no-cache`` runs every probe and stores nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isolate import __version__
from isolate.cache import cache_root, untrusted
from isolate.errors import IsolateError
from isolate.fsutil import write_atomic
from isolate.verify.report import CHILDREN, ERROR, IMPORTS, ISOLATION, Finding
from isolate.verify.scan import Tree

SCHEMA = "isolate.verify-cache/1"
CACHED_CHECKS = (ISOLATION, CHILDREN, IMPORTS)
# Everything the probes run or judge with: a change to any of them is a miss.
_PROBE_MODULES = ("isolate.verify.probes", "isolate.verify.children",
                  "isolate.verify.isolation_probe", "isolate.verify.import_probe",
                  "isolate.verify.children_probe", "isolate.hostile_env")
_HOST_FILES = ("/etc/ld.so.cache", "/etc/os-release")
ARCHIVE_LOCATION = "a fresh unpack of the archive"


@dataclass(frozen=True, kw_only=True, slots=True)
class Key:
    tree: str  # sha256 of every scanned path, kind, mode and content hash, and directories
    manifest: str  # sha256 of the manifest's bytes
    location: str  # the bundle's real path, or ARCHIVE_LOCATION
    host: str  # sha256 of the kernel, C library and host library cache
    probes: str  # sha256 of the probes' code and isolate's version

    @property
    def slot(self) -> str:
        text = "\0".join((self.manifest, self.location, self.host, self.probes))
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    def to_dict(self) -> dict[str, str]:
        return {"tree": self.tree, "manifest": self.manifest, "location": self.location,
                "host": self.host, "probes": self.probes}


@dataclass(frozen=True, kw_only=True, slots=True)
class CachedCheck:
    findings: tuple[Finding, ...]
    detail: str
    stored: str  # when the probe ran, ISO 8601 UTC


@dataclass(frozen=True, kw_only=True, slots=True)
class Lookup:
    """What the cache holds for a slot: the tree it was stored for and its checks."""

    tree: str | None = None
    checks: Mapping[str, CachedCheck] | None = None
    ignored: str | None = None  # why an existing entry was not trusted

    def hits(self, tree: str) -> Mapping[str, CachedCheck]:
        return self.checks if self.checks is not None and self.tree == tree else {}


def tree_sha256(tree: Tree, manifest_sha256: str) -> str:
    """The sha256 of what a scan saw: every file's path, kind, mode and content hash (a
    symlink's target), every directory, and the manifest."""
    h = hashlib.sha256(f"manifest {manifest_sha256}\n".encode())
    h.update("".join([f"{f.kind}\0{f.path}\0{f.mode:o}\0{f.size}\0{f.sha256}\0{f.problem or ''}\n"
                      for f in tree.files.values()]).encode("utf-8", "surrogateescape"))
    h.update("".join([f"dir\0{d}\n" for d in sorted(tree.dirs)])
             .encode("utf-8", "surrogateescape"))
    for d, why in tree.unlisted:
        h.update(f"unlisted\0{d}\0{why}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def host_sha256() -> str:
    """The host as the probes meet it: kernel, C library, the loader's library cache."""
    u = os.uname()
    h = hashlib.sha256(f"{u.sysname}\0{u.release}\0{u.version}\0{u.machine}\0".encode())
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    h.update(f"{libc}\0".encode())
    for name in _HOST_FILES:
        try:
            h.update(hashlib.sha256(Path(name).read_bytes()).digest())
        except OSError as exc:
            h.update(f"{name}: {exc.errno}".encode())
    return h.hexdigest()


def probes_sha256() -> str:
    h = hashlib.sha256(f"isolate {__version__}\0".encode())
    for name in _PROBE_MODULES:  # their source, found without importing them
        spec = importlib.util.find_spec(name)
        file = spec.origin if spec is not None else None
        h.update(Path(file).read_bytes() if file else name.encode())
    return h.hexdigest()


class ProbeCache:
    """The probe results stored under ``directory`` (default ``cache_root()/verify``)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else cache_root() / "verify"
        self._host: str | None = None
        self._probes: str | None = None

    def key(self, tree: str, manifest: str, location: str) -> Key:
        if self._host is None:
            self._host, self._probes = host_sha256(), probes_sha256()
        assert self._probes is not None
        return Key(tree=tree, manifest=manifest, location=location, host=self._host,
                   probes=self._probes)

    def _path(self, key: Key) -> Path:
        return self.directory / f"{key.slot}.json"

    def lookup(self, key: Key) -> Lookup:
        """The entry of ``key``'s slot; call ``Lookup.hits`` with the scanned tree's sha256."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return Lookup()
        except OSError as exc:
            return Lookup(ignored=f"{path} cannot be read: {exc.strerror}")
        try:
            why = untrusted(os.lstat(self.directory), str(self.directory), stat.S_IFDIR) \
                or untrusted(os.fstat(fd), str(path), stat.S_IFREG)
            if why is not None:
                return Lookup(ignored=why)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = json.loads(f.read(1 << 24))
            return _decode(data, key) or Lookup(ignored=f"{path} is not a cache entry of "
                                                        "this bundle")
        except (OSError, ValueError, TypeError, KeyError) as exc:
            return Lookup(ignored=f"{path} cannot be read: {exc}")
        finally:
            os.close(fd)

    def store(self, key: Key, runs: Iterable[tuple[str, list[Finding], str, str | None]]
              ) -> None:
        """Keep each check's findings and detail when it found no error; ``runs`` are
        (check, findings, detail, when it was stored before or None when it ran now). A
        cache that cannot be written is left alone: the next verify runs the probes."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        checks = {name: {"stored": stored or now, "detail": detail,
                         "findings": [f.to_dict() for f in found]}
                  for name, found, detail, stored in runs
                  if name in CACHED_CHECKS and not any(f.severity == ERROR for f in found)}
        if not checks:
            return
        data = {"schema": SCHEMA, "key": key.to_dict(), "checks": checks}
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self._path(key), json.dumps(data, sort_keys=True), mode=0o600)
        except (OSError, IsolateError):
            return


def _decode(data: Any, key: Key) -> Lookup | None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    stored_key = data.get("key") or {}
    wanted = key.to_dict()
    if any(stored_key.get(k) != wanted[k] for k in wanted if k != "tree"):
        return None
    checks: dict[str, CachedCheck] = {}
    for name, c in (data.get("checks") or {}).items():
        if name not in CACHED_CHECKS:
            continue
        findings = tuple(Finding(severity=str(f["severity"]), check=name, path=f["path"],
                                 message=str(f["message"])) for f in c["findings"])
        if any(f.severity == ERROR for f in findings):
            continue  # never stored so: not trusted
        checks[name] = CachedCheck(findings=findings, detail=str(c["detail"]),
                                   stored=str(c["stored"]))
    return Lookup(tree=str(stored_key.get("tree")), checks=checks)
