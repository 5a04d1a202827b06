"""``verify``: run every check on a bundle directory or archive and report all findings.

The three checks that start the bundled interpreter (isolation, children, import smoke)
start first, in their own threads, and run while the tree is scanned (every file read
once: sha256, mode, build-path search, ELF facts) and the static checks judge the scan.

Inputs that are not a bundle raise ``InputError`` (exit 2): a path that does not exist, a
file that is not a bundle archive or cannot be unpacked, a directory without
``isolate-manifest.json``, a ``--manifest-sha256`` that is not a sha256, an archive whose
``.sha256`` does not match. A manifest that exists but cannot be read is a finding (exit
1): the checks that do not need it still run, the others are reported as skipped. So is a
manifest whose sha256 differs from the one recorded outside the bundle (see
``isolate.verify.manifest_hash``); when nothing records it, a note says so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from isolate.bundle.elf import load_allowlist
from isolate.bundle.unpack import unpack
from isolate.errors import InputError, IsolateError
from isolate.model.manifest import MANIFEST_NAME, Manifest, ManifestError
from isolate.model.profiles import HostProfile
from isolate.model.tree import BUILD_MARKER
from isolate.proc import Runner
from isolate.verify import checks, children, manifest_hash, probes
from isolate.verify.layout import Layout, layout_of
from isolate.verify.report import (
    CHECK_ORDER,
    CHILDREN,
    ELF,
    ERROR,
    HOST,
    IMPORTS,
    INTEGRITY,
    ISOLATION,
    MANIFEST,
    RELOCATION,
    SCAN,
    CheckRun,
    Finding,
    VerifyReport,
)
from isolate.verify.scan import Tree, scan_tree

T = TypeVar("T")

# The marker every build directory's name holds; used only when the manifest, which
# records it, cannot be read.
DEFAULT_BUILD_MARKER = BUILD_MARKER
_NO_MANIFEST = "needs a readable manifest"


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.monotonic()
    value = fn()
    return value, round(time.monotonic() - start, 3)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[Path, float | None]]:
    """The bundle's root directory; an archive is unpacked into a temporary directory."""
    path = Path(os.path.abspath(path))  # the probes run in other working directories
    if path.is_dir():
        yield path, None
        return
    if not path.exists():
        raise InputError(f"{path}: no such file or directory",
                         hint="give a bundle directory or a bundle archive (.tar.zst, .tar.gz)")
    with tempfile.TemporaryDirectory(prefix="isolate-verify-") as tmp:
        start = time.monotonic()
        top = unpack(path, Path(tmp))
        yield top, round(time.monotonic() - start, 3)


def _manifest(root: Path, path: Path, given_sha256: str | None
              ) -> tuple[Manifest | None, list[Finding], str]:
    """The manifest, its findings (unreadable, changed after the build) and a summary."""
    mpath = root / MANIFEST_NAME
    if not mpath.is_file() and not mpath.is_symlink():
        raise InputError(f"{root} is not an isolate bundle: it has no {MANIFEST_NAME}",
                         hint="give the bundle's top directory (the one holding "
                              f"{MANIFEST_NAME}) or its archive")
    expected = manifest_hash.locate(path, root, given=given_sha256)
    found: list[Finding] = []
    detail = ""
    try:
        data = mpath.read_bytes()
        found, detail = manifest_hash.check(data, expected)
        return Manifest.loads(data), found, detail
    except (OSError, ManifestError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        changed = "".join(f"; {f.message}" for f in found if f.severity == ERROR)
        return None, [Finding(severity=ERROR, check=MANIFEST, path=MANIFEST_NAME,
                              message=f"cannot be read: {why}; integrity cannot be checked "
                                      "and the relocation audit looks for the build marker "
                                      f"only{changed}")], detail


def _probe(check: str, fn: Callable[[], tuple[list[Finding], str]]
           ) -> tuple[list[Finding], str, float]:
    """Run a probe; a failure to start the bundled interpreter at all is its finding."""
    start = time.monotonic()
    try:
        found, detail = fn()
    except IsolateError as exc:
        found, detail = [Finding(severity=ERROR, check=check, path=None,
                                 message=f"{exc.message}" + (f": {exc.details}"
                                                             if exc.details else ""))], ""
    return found, detail, round(time.monotonic() - start, 3)


def verify(path: Path, *, host: HostProfile | None, runner: Runner,
           manifest_sha256: str | None = None) -> VerifyReport:
    """Verify the bundle directory or archive at ``path``; every finding at once.

    ``manifest_sha256`` is the manifest's expected sha256; by default it is read from the
    file ``isolate bundle`` records it in (see ``isolate.verify.manifest_hash``).
    """
    start = time.monotonic()
    given = manifest_hash.given_hex(manifest_sha256) if manifest_sha256 is not None else None
    with _opened(path) as (root, unpack_seconds):
        (manifest, findings, detail), seconds = _timed(
            lambda: _manifest(root, Path(os.path.abspath(path)), given))
        runs = [CheckRun(name=MANIFEST, seconds=seconds, detail=detail)]
        layout = layout_of(root, manifest)
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="isolate-probe") as pool:
            started: dict[str, Future[tuple[list[Finding], str, float]]] = {}
            if layout is not None:
                lay: Layout = layout
                version = manifest.interpreter.version if manifest else None
                optional = tuple(str(h.get("soname")) for h in (
                    manifest.elf.host_libraries if manifest else ()) if not h.get("required", True))
                started[IMPORTS] = pool.submit(_probe, IMPORTS, lambda: probes.import_smoke(
                    root, lay, runner, version=version, optional_host_libraries=optional))
                started[ISOLATION] = pool.submit(_probe, ISOLATION, lambda: (
                    probes.isolation(root, lay, runner), ""))
                started[CHILDREN] = pool.submit(_probe, CHILDREN, lambda: children.children(
                    root, lay, runner))
            findings += _static(root, manifest, layout, host, runs)
            for name in (ISOLATION, CHILDREN, IMPORTS):
                if name not in started:
                    runs.append(CheckRun(name=name, seconds=0.0,
                                         skipped="the interpreter's layout is unknown"))
                    continue
                found, detail, seconds = started[name].result()
                findings += found
                runs.append(CheckRun(name=name, seconds=seconds, detail=detail))
    timings = {"unpack": unpack_seconds} if unpack_seconds is not None else {}
    return VerifyReport(
        bundle=str(path), name=manifest.name if manifest else None,
        host=host.id if host else None,
        findings=tuple(sorted(findings, key=lambda f: f.sort_key)),
        checks=tuple(sorted(runs, key=lambda r: CHECK_ORDER.index(r.name))),
        seconds=round(time.monotonic() - start, 3), timings=timings)


def _static(root: Path, manifest: Manifest | None, layout: Layout | None,
            host: HostProfile | None, runs: list[CheckRun]) -> list[Finding]:
    """Scan once, then integrity, relocation, ELF closure and host checks on the scan."""
    findings: list[Finding] = []
    needles = checks.needles_of(manifest, DEFAULT_BUILD_MARKER)
    sizes = {e.path: e.size for e in manifest.files} if manifest else None
    tree: Tree
    tree, seconds = _timed(lambda: scan_tree(root, [n.text for n in needles],
                                             skip=[MANIFEST_NAME], size_hint=sizes))
    findings += [Finding(severity=ERROR, check=SCAN, path=rel, message=why)
                 for rel, why in tree.unlisted]
    elf_count = sum(1 for f in tree.files.values() if f.is_elf)
    runs.append(CheckRun(name=SCAN, seconds=seconds,
                         detail=f"{len(tree.files)} files, {tree.bytes_read / 1e6:.1f} MB, "
                                f"{elf_count} ELF files"))
    if manifest is not None:
        found, seconds = _timed(lambda: checks.integrity(tree, manifest))
        findings += found
        runs.append(CheckRun(name=INTEGRITY, seconds=seconds,
                             detail=f"{len(manifest.files)} manifest entries"))
    else:
        runs.append(CheckRun(name=INTEGRITY, seconds=0.0, skipped=_NO_MANIFEST))
    found, seconds = _timed(lambda: checks.relocation(tree, needles, layout))
    findings += found
    runs.append(CheckRun(name=RELOCATION, seconds=seconds,
                         detail=", ".join(repr(n.text) for n in needles)))
    (found, floors), seconds = _timed(lambda: checks.elf_closure(tree, manifest,
                                                                 load_allowlist()))
    findings += found
    floor = next((f for f in floors if f.kind == "glibc"), None)
    runs.append(CheckRun(name=ELF, seconds=seconds,
                         detail=f"glibc floor {floor.version} ({floor.file})" if floor
                         else "no versioned glibc symbols"))
    if host is not None:
        arch = manifest.arch if manifest else checks.elf_arch(tree.files.values())
        found, seconds = _timed(lambda: checks.host_compat(host, floors, arch) + (
            checks.host_libraries(tree, manifest, host) if manifest is not None else []))
        findings += found
        runs.append(CheckRun(name=HOST, seconds=seconds,
                             detail=f"{host.id}: {host.libc.family} {host.libc.version}, "
                                    f"{host.arch}"))
    return findings
