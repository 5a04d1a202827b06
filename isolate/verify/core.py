"""``verify``: run every check on a bundle directory or archive and report all findings.

A directory: the tree is scanned (every file read once: sha256, mode, build-path search,
ELF facts) in worker processes, started first so that they can be forked before this
process runs any other thread (see ``isolate.verify.scan.start_scan``); the three checks
that start the bundled interpreter (isolation, children, import smoke) start next, in
their own threads, and run while the scan goes on and the static checks judge it.

An archive whose probes the cache may answer (an entry is stored for its manifest) is
read as a stream (``isolate.bundle.unpack.read_members``: the same checks as unpacking,
nothing written) and scanned as its entries pass; the static checks judge that scan, and
it is unpacked into a temporary directory only for the probes the cache cannot answer
after all (the tree differs). Any other archive (no cache, nothing stored, hard links,
an unreadable manifest) is unpacked once and verified as a directory, its probes running
while the unpacked tree is scanned.

With a ``ProbeCache`` (the CLI's default), a probe whose result was stored for the same
scanned bytes, location, host and probes is not run again: its ``CheckRun.cached``
says when it ran (see ``isolate.verify.probe_cache``). The static checks always run;
with an ``ElfCache`` they read the ELF facts of a file whose sha256 was parsed before
from it (see ``isolate.bundle.elf_cache``), and the scan's detail says how many.

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
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from isolate.bundle.elf import load_allowlist
from isolate.bundle.elf_cache import ElfCache
from isolate.errors import InputError, IsolateError
from isolate.fsutil import sha256_file
from isolate.model.manifest import MANIFEST_NAME, Manifest, ManifestError, load_json
from isolate.model.tree import BUILD_MARKER
from isolate.proc import Runner, cpus, forks, release_pool
from isolate.verify import checks, manifest_hash, probe_cache
from isolate.verify.layout import Layout, layout_of
from isolate.verify.probe_cache import ProbeCache
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
from isolate.verify.scan import (
    PartScan,
    Tree,
    scan_members,
    scan_tree,
    start_scan,
    worker_pool,
)

if TYPE_CHECKING:
    from isolate.model.profiles import HostProfile

T = TypeVar("T")

# The marker every build directory's name holds; used only when the manifest, which
# records it, cannot be read.
DEFAULT_BUILD_MARKER = BUILD_MARKER
_NO_MANIFEST = "needs a readable manifest"


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.monotonic()
    value = fn()
    return value, round(time.monotonic() - start, 3)


def _manifest(root: Path, path: Path, given_sha256: str | None, data: bytes | None = None
              ) -> tuple[Manifest | None, list[Finding], str, str | None]:
    """The manifest, its findings (unreadable, changed after the build), a summary and
    the sha256 of its bytes (None when it cannot be read). ``data``: the manifest's bytes
    read from an archive stream, when ``root`` is not on disk."""
    return _judged(_read_manifest(root, path, given_sha256, data))


# The manifest as first read: its bytes (None when they cannot be read), its hash check's
# findings and summary, and its JSON object, or why there is none.
_Read = tuple[bytes | None, list[Finding], str, dict[str, Any] | OSError | ManifestError]


def _read_manifest(root: Path, path: Path, given_sha256: str | None,
                   data: bytes | None = None) -> _Read:
    """The manifest's bytes, hash check and JSON object (see ``_manifest``), not yet
    read as a manifest (``_judged`` does)."""
    mpath = root / MANIFEST_NAME
    if data is None and not mpath.is_file() and not mpath.is_symlink():
        raise InputError(f"{root} is not an isolate bundle: it has no {MANIFEST_NAME}",
                         hint="give the bundle's top directory (the one holding "
                              f"{MANIFEST_NAME}) or its archive")
    expected = manifest_hash.locate(path, root, given=given_sha256)
    found: list[Finding] = []
    detail = ""
    try:
        if data is None:
            data = mpath.read_bytes()
        found, detail = manifest_hash.check(data, expected)
        return data, found, detail, load_json(data)
    except (OSError, ManifestError) as exc:
        return data, found, detail, exc


def _judged(read: _Read) -> tuple[Manifest | None, list[Finding], str, str | None]:
    """``_manifest``'s answer from what ``_read_manifest`` read."""
    data, found, detail, doc = read
    exc: OSError | ManifestError
    if isinstance(doc, dict):
        assert data is not None  # the JSON object came from it
        try:
            return Manifest.from_dict(doc), found, detail, hashlib.sha256(data).hexdigest()
        except ManifestError as error:
            exc = error
    else:
        exc = doc
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    changed = "".join(f"; {f.message}" for f in found if f.severity == ERROR)
    return None, [Finding(severity=ERROR, check=MANIFEST, path=MANIFEST_NAME,
                          message=f"cannot be read: {why}; integrity cannot be checked "
                                  "and the relocation audit looks for the build marker "
                                  f"only{changed}")], detail, None


def _needles_guess(doc: object) -> tuple[checks.Needle, ...]:
    """The needles of the manifest whose JSON object is ``doc``, as far as the JSON tells:
    the scan starts on them while the manifest is read (the manifest's own decide)."""
    if isinstance(doc, dict):
        marker, prefixes = doc.get("build_marker"), doc.get("source_prefixes", [])
        if isinstance(marker, str) and isinstance(prefixes, list) and all(
                isinstance(p, str) for p in prefixes):
            return checks.needles_for(marker, prefixes)
    return checks.needles_of(None, DEFAULT_BUILD_MARKER)


# isolate writes a manifest indented by one space, with these top-level keys near its
# start, before its list of files (see ``Manifest.dumps``)
_PEEK_KEYS = re.compile(r'\n "(build_marker|source_prefixes)": ')
_PEEK_BYTES = 64 << 10


def _needles_peek(data: bytes) -> tuple[checks.Needle, ...] | None:
    """``_needles_guess`` from the top-level keys isolate writes near the start of the
    manifest whose bytes are ``data``, without reading the rest of its JSON; None when
    they are not found there as isolate writes them. A guess: the manifest's own
    needles decide."""
    head = data[:_PEEK_BYTES].decode("utf-8", "replace")
    found: dict[str, object] = {}
    decoder = json.JSONDecoder()
    for m in _PEEK_KEYS.finditer(head):
        try:
            found.setdefault(m.group(1), decoder.raw_decode(head, m.end())[0])
        except ValueError:
            return None
    return _needles_guess(found) if len(found) == 2 else None


def _sizes_guess(doc: object) -> dict[str, int] | None:
    """The file sizes the manifest's JSON object ``doc`` lists (hints for the scan), or
    None unless every entry has a path and a size that is an int."""
    try:
        sizes = {f["path"]: f["size"] for f in doc["files"]}  # type: ignore[index]
    except (TypeError, KeyError):
        return None
    return sizes if all(type(v) is int for v in sizes.values()) else None


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


Probed = tuple[list[Finding], str, float]
PROBES = (ISOLATION, CHILDREN, IMPORTS)


class _Probes:
    """The probes of one bundle on disk: started at most once each, in threads."""

    def __init__(self, pool: ThreadPoolExecutor, runner: Runner,
                 manifest: Manifest | None) -> None:
        self.pool = pool
        self.runner = runner
        self.manifest = manifest
        self.started: dict[str, Future[Probed]] = {}

    def start(self, root: Path, layout: Layout, names: Iterable[str]) -> None:
        from isolate.verify import children, probes  # imported when a probe runs

        m = self.manifest
        version = m.interpreter.version if m else None
        optional = tuple(str(h.get("soname")) for h in (
            m.elf.host_libraries if m else ()) if not h.get("required", True))
        jobs: dict[str, Callable[[], tuple[list[Finding], str]]] = {
            IMPORTS: lambda: probes.import_smoke(root, layout, self.runner, version=version,
                                                 optional_host_libraries=optional),
            ISOLATION: lambda: (probes.isolation(root, layout, self.runner), ""),
            CHILDREN: lambda: children.children(root, layout, self.runner),
        }
        for name in names:
            if name not in self.started:
                self.started[name] = self.pool.submit(_probe, name, jobs[name])


def verify(path: Path, *, host: HostProfile | None, runner: Runner,
           manifest_sha256: str | None = None, cache: ProbeCache | None = None,
           elf_cache: ElfCache | None = None) -> VerifyReport:
    """Verify the bundle directory or archive at ``path``; every finding at once.

    ``manifest_sha256`` is the manifest's expected sha256; by default it is read from the
    file ``isolate bundle`` records it in (see ``isolate.verify.manifest_hash``).
    ``cache`` keeps and repeats the probes' results (see ``isolate.verify.probe_cache``);
    without one every probe runs. ``elf_cache`` keeps ELF facts by content (see
    ``isolate.bundle.elf_cache``); without one every ELF file is parsed.
    """
    start = time.monotonic()
    given = manifest_hash.given_hex(manifest_sha256) if manifest_sha256 is not None else None
    apath = Path(os.path.abspath(path))  # the probes run in other working directories
    if apath.is_dir():
        return _verify_dir(path, apath, apath, given, host, runner, cache, start, {},
                           elf_cache=elf_cache)
    # imported for archives only: a directory's verify starts sooner without them
    from isolate.bundle.unpack import NotStreamable, unpack
    if not apath.exists():
        raise InputError(f"{apath}: no such file or directory",
                         hint="give a bundle directory or a bundle archive (.tar.zst, .tar.gz)")
    try:
        return _verify_archive(path, apath, given, host, runner, cache, start, elf_cache)
    except NotStreamable:
        with tempfile.TemporaryDirectory(prefix="isolate-verify-") as tmp:
            top, seconds = _timed(lambda: unpack(apath, Path(tmp)))
            return _verify_dir(path, apath, top, given, host, runner, cache, start,
                               {"unpack": seconds}, location=probe_cache.ARCHIVE_LOCATION,
                               elf_cache=elf_cache)


def _verify_dir(shown: Path, path: Path, root: Path, given: str | None,
                host: HostProfile | None, runner: Runner, cache: ProbeCache | None,
                start: float, timings: dict[str, float], location: str | None = None,
                elf_cache: ElfCache | None = None) -> VerifyReport:
    with contextlib.ExitStack() as stack:
        # The scan's worker processes start first: forked while this process runs no
        # other thread (see isolate.proc.process_pool), and before it holds the manifest
        # (see scan.worker_pool). They read, on the needles and sizes the manifest's JSON
        # gives, while the manifest is judged and the probes start.
        workers, fork_seconds = _timed(lambda: worker_pool() if forks() else None)
        if workers is not None:
            stack.callback(workers.shutdown, cancel_futures=True)
        read, read_seconds = _timed(lambda: _read_manifest(root, path, given))
        guess = _needles_guess(read[3])
        scan_start = time.monotonic() - fork_seconds
        scanning = stack.enter_context(start_scan(
            root, [n.text for n in guess], skip=[MANIFEST_NAME],
            size_hint=_sizes_guess(read[3]), elf_cache=elf_cache, pool=workers))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=3,
                                                      thread_name_prefix="isolate-probe"))
        (manifest, findings, detail, msha), seconds = _timed(lambda: _judged(read))
        runs = [CheckRun(name=MANIFEST, seconds=round(read_seconds + seconds, 3),
                         detail=detail)]
        layout = layout_of(root, manifest)
        where = location or os.path.realpath(root)
        lookup = probe_cache.Lookup()
        if cache is not None and msha is not None:
            lookup = cache.lookup(cache.key("", msha, where))
        started = _Probes(pool, runner, manifest)
        if layout is not None and lookup.checks is None:  # nothing stored: start now
            started.start(root, layout, PROBES)
        needles = checks.needles_of(manifest, DEFAULT_BUILD_MARKER)
        tree = scanning.result()
        facts = elf_cache
        if [n.text for n in needles] != [n.text for n in guess]:
            # The JSON said more than the manifest, which cannot be read, or said it
            # otherwise (a marker that is no string): read again for the manifest's own.
            facts = ElfCache(elf_cache.directory) if elf_cache is not None else None
            if facts is not None:
                stack.callback(facts.close)
            tree = scan_tree(root, [n.text for n in needles], skip=[MANIFEST_NAME],
                             elf_cache=facts)
        seconds = round(time.monotonic() - scan_start, 3)
        findings += _static(tree, seconds, needles, manifest, layout, host, runs,
                            facts=facts)
        findings += _finish_probes(root, layout, tree, msha, where, lookup, started, cache,
                                   runs)
    return _report(shown, manifest, host, findings, runs, start, timings)


_PENDING_LIMIT = 256 << 20  # bytes of entries read before the manifest, at most


def _manifest_entry(path: Path) -> tuple[str, bytes]:
    """The archive's top-level directory and its manifest's bytes, read in this process
    from the start of the archive (isolate's archives are sorted: the manifest comes
    before python/); ``NotStreamable`` when it is not near the start."""
    from isolate.bundle.unpack import NotStreamable, check_sidecar, leading_members

    held = 0
    top = ""
    try:
        members = leading_members(path)
        with contextlib.closing(members):
            for m in members:
                top = m.top
                if m.path == MANIFEST_NAME:
                    if m.kind != "file":
                        raise NotStreamable(f"{path}: {MANIFEST_NAME} is not a regular file")
                    return top, m.data
                held += len(m.data)
                if held > _PENDING_LIMIT:
                    raise NotStreamable(f"{path}: the manifest is not near the start")
        raise InputError(f"{path} is not an isolate bundle: it has no {MANIFEST_NAME}",
                         hint="give a bundle archive written by `isolate bundle`")
    except NotStreamable:
        raise
    except InputError:
        check_sidecar(path)  # a wrong .sha256 is what to say first, as unpack says it
        raise


def _verify_archive(shown: Path, path: Path, given: str | None, host: HostProfile | None,
                    runner: Runner, cache: ProbeCache | None, start: float,
                    elf_cache: ElfCache | None) -> VerifyReport:
    """An archive read as a stream (see the module's doc): in parts by worker processes
    when it is made of frames that can be read apart (``archive_parts``), else whole,
    by a child process for a large one (``read_members``)."""
    from isolate.bundle.unpack import (
        PARTS_MIN_BYTES,
        NotStreamable,
        archive_parts,
        check_sidecar,
        read_members,
        sidecar_sha256,
        unpack,
    )

    t0 = time.monotonic()
    how = "read from the archive stream"
    with contextlib.ExitStack() as stack:
        # The workers start first: forked while this process runs no other thread (see
        # _verify_dir).
        parts = archive_parts(path, cpus()) if path.stat().st_size >= PARTS_MIN_BYTES \
            else None
        workers = worker_pool(len(parts)) if parts is not None and forks() else None
        joined = True  # the workers, when the archive is done: not when read in parts
        leave: list[Callable[[], None]] = []  # what waits for them then, at the end

        def stop_workers(pool: Executor) -> None:
            if joined:
                pool.shutdown(wait=True, cancel_futures=True)
            else:  # they end while the checks run, not before them (15 ms)
                leave.append(release_pool(pool))

        if workers is not None:
            stack.callback(stop_workers, workers)
        (top, data), seconds = _timed(lambda: _manifest_entry(path))
        root = path.parent / top  # a name only: nothing is written there
        where = probe_cache.ARCHIVE_LOCATION
        lookup = cache.lookup(cache.key("", hashlib.sha256(data).hexdigest(), where)) \
            if cache is not None else probe_cache.Lookup()
        if lookup.checks is None:  # the probes need an unpacked tree: scan that instead
            raise NotStreamable(f"{path}: no probe results are stored for its manifest")
        # The parts are read on the needles the manifest's first lines name (else its
        # JSON's), while the rest of it is read (40 ms for Nova's 4 MB of JSON) and judged.
        guess = _needles_peek(data)
        early: tuple[_Read, float] | None = None
        if guess is None:
            early = _timed(lambda: _read_manifest(root, path, given, data))
            guess = _needles_guess(early[0][3])
        scanning: PartScan | None = None
        hashed: Future[str] | None = None
        if workers is not None and parts is not None:
            scanning = stack.enter_context(PartScan(
                root, path, parts, [n.text for n in guess], workers, skip=[MANIFEST_NAME],
                elf_cache=elf_cache))
            if sidecar_sha256(path) is not None:  # hashed by the worker done first
                with contextlib.suppress(BrokenExecutor, RuntimeError):  # (else here)
                    hashed = workers.submit(sha256_file, path)
        read, read_seconds = early or _timed(lambda: _read_manifest(root, path, given, data))
        (manifest, findings, detail, msha), judge_seconds = _timed(lambda: _judged(read))
        seconds = round(seconds + read_seconds + judge_seconds, 3)
        if manifest is None or msha is None:
            raise NotStreamable(f"{path}: its manifest cannot be read")  # judged on disk
        needles = checks.needles_of(manifest, DEFAULT_BUILD_MARKER)
        texts = [n.text for n in needles]
        scanned = scanning.result() if scanning is not None and texts == [
            n.text for n in guess] else None
        in_parts = False
        if scanned is not None and parts is not None:
            in_parts = True
            check_sidecar(path, sha256=_hashed(hashed))
            how += f" in {len(parts)} parts by as many processes"
            tree, digests = scanned
            same = digests.get(MANIFEST_NAME) == hashlib.sha256(data).digest()
        else:
            if scanning is not None:
                scanning.close()
                how += (f", whole ({scanning.why})" if scanning.why else
                        ", whole (the manifest's needles differ from those it was read on)")
            members = read_members(path, sha256=_hashed(hashed))
            with contextlib.closing(members):
                tree, kept = scan_members(root, members, texts, skip=[MANIFEST_NAME],
                                          elf_cache=elf_cache)
            same = kept.get(MANIFEST_NAME) == data
        if not same:
            raise InputError(f"{path} changed while it was read",
                             hint="verify an archive that nothing writes to")
        joined = not in_parts
    try:
        runs = [CheckRun(name=MANIFEST, seconds=seconds, detail=detail)]
        layout = layout_of(root, manifest)
        findings += _static(tree, round(time.monotonic() - t0, 3), needles, manifest, layout, host,
                            runs, source=how, facts=elf_cache)
        timings: dict[str, float] = {}
        with contextlib.ExitStack() as stack, ThreadPoolExecutor(
                max_workers=3, thread_name_prefix="isolate-probe") as pool:

            def on_disk() -> Path:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="isolate-verify-")))
                unpacked, timings["unpack"] = _timed(lambda: unpack(path, tmp))
                return unpacked

            findings += _finish_probes(on_disk, layout, tree, msha, where, lookup,
                                       _Probes(pool, runner, manifest), cache, runs)
    finally:
        for wait in leave:  # (they have ended by now: this takes no time)
            wait()
    return _report(shown, manifest, host, findings, runs, start, timings)


def _finish_probes(on_disk: Path | Callable[[], Path], layout: Layout | None, tree: Tree,
                   msha: str | None, where: str, lookup: probe_cache.Lookup,
                   started: _Probes, cache: ProbeCache | None, runs: list[CheckRun]
                   ) -> list[Finding]:
    """The probes' findings: from the cache when it holds this very tree, else run (on
    ``on_disk``, a root or what unpacks one); fresh error-free results are stored."""
    if layout is None:
        runs.extend(CheckRun(name=name, seconds=0.0,
                             skipped="the interpreter's layout is unknown") for name in PROBES)
        return []
    fingerprint = probe_cache.tree_sha256(tree, msha) if msha is not None else None
    hits = dict(lookup.hits(fingerprint)) if cache is not None and fingerprint else {}
    for name in started.started:
        hits.pop(name, None)  # already running: its own result counts
    missing = [name for name in PROBES if name not in hits and name not in started.started]
    if missing:
        root = on_disk if isinstance(on_disk, Path) else on_disk()
        started.start(root, layout, missing)
    out: list[Finding] = []
    keep: list[tuple[str, list[Finding], str, str | None]] = []
    note = f"; cache entry ignored: {lookup.ignored}" if lookup.ignored else ""
    for name in PROBES:
        hit = hits.get(name)
        if hit is not None:
            out += hit.findings
            runs.append(CheckRun(name=name, seconds=0.0, detail=hit.detail, cached=hit.stored))
            keep.append((name, list(hit.findings), hit.detail, hit.stored))
            continue
        found, detail, seconds = started.started[name].result()
        out += found
        runs.append(CheckRun(name=name, seconds=seconds, detail=detail + note if detail
                             else note.removeprefix("; ")))
        keep.append((name, found, detail, None))
    if cache is not None and fingerprint is not None and msha is not None and any(
            stored is None for *_rest, stored in keep):
        cache.store(cache.key(fingerprint, msha, where), keep)
    return out


def _report(shown: Path, manifest: Manifest | None, host: HostProfile | None,
            findings: list[Finding], runs: list[CheckRun], start: float,
            timings: dict[str, float]) -> VerifyReport:
    return VerifyReport(
        bundle=str(shown), name=manifest.name if manifest else None,
        host=host.id if host else None,
        findings=tuple(sorted(findings, key=lambda f: f.sort_key)),
        checks=tuple(sorted(runs, key=lambda r: CHECK_ORDER.index(r.name))),
        seconds=round(time.monotonic() - start, 3), timings=timings)


def _hashed(future: Future[str] | None) -> Callable[[Path], str]:
    """The sha256 of a file as ``future`` gives it, else (no future, or it failed or was
    cancelled) as this process reads it."""
    def sha256(path: Path) -> str:
        if future is not None and not future.cancelled():
            with contextlib.suppress(Exception):  # the worker died: read it here then
                return future.result()
        return sha256_file(path)

    return sha256


def _facts_detail(facts: ElfCache | None) -> str:
    """How the ELF facts were found, for the scan's detail."""
    if facts is None:
        return ""
    c = facts.counts
    ignored = f"; cache entry ignored: {c.ignored}" if c.ignored else ""
    return f" ({c.cached} read from the ELF facts cache, {c.parsed} parsed{ignored})"


def _static(tree: Tree, seconds: float, needles: tuple[checks.Needle, ...],
            manifest: Manifest | None, layout: Layout | None, host: HostProfile | None,
            runs: list[CheckRun], source: str = "", facts: ElfCache | None = None
            ) -> list[Finding]:
    """Integrity, relocation, ELF closure and host checks on the scan of the tree."""
    findings: list[Finding] = []
    findings += [Finding(severity=ERROR, check=SCAN, path=rel, message=why)
                 for rel, why in tree.unlisted]
    elf_count = sum(1 for f in tree.files.values() if f.is_elf)
    runs.append(CheckRun(name=SCAN, seconds=seconds,
                         detail=f"{len(tree.files)} files, {tree.bytes_read / 1e6:.1f} MB, "
                                f"{elf_count} ELF files{_facts_detail(facts)}"
                                + (f", {source}" if source else "")))
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
