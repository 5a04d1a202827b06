"""Wheelhouses: every artifact a runtime's locks need, so that a build needs no network.

``isolate fetch`` fills a directory with the artifact each pin of the runtime lock and
the tests lock would be built from (the best wheel for the target, else the sdist), all
hash-checked. For a pin that only has an sdist, the wheel built from it is stored too,
as ``built/<sdist sha256>/<wheel>``, so that an offline build needs neither the sdist's
build dependencies nor an index. ``isolate bundle --wheelhouse DIR --offline`` then
reads the directory as a ``--find-links`` source and takes built wheels from it.

Every file is written under a temporary name and renamed into place: an interrupted
fetch leaves whole files only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from isolate.bundle.fetch import Artifact, Fetcher, Target, check_hash
from isolate.cache import cache_root
from isolate.errors import CommandFailed, InputError
from isolate.fsutil import ensure_writable_dir, sha256_file
from isolate.interpreters import Discovery
from isolate.locking.backends import IndexOptions, PipTools
from isolate.model.lock import Pin
from isolate.proc import Runner, clean_env
from isolate.progress import NoProgress, Progress

BUILT = "built"  # wheelhouse sub-directory: built/<sdist sha256>/<wheel>
SDIST_EPOCH = 315532800  # 1980-01-01: fixed zip timestamps in wheels built from sdists
_PART = ".part"


def prebuilt_wheel(dirs: Sequence[Path], sdist_sha256: str) -> Path | None:
    """A wheel built from the sdist with this sha256 in ``dirs`` (``DIR/<sha256>/*.whl``)."""
    for d in dirs:
        built = d / sdist_sha256
        wheels = sorted(built.glob("*.whl")) if built.is_dir() else []
        if wheels:
            return wheels[0]
    return None


def wheel_from_sdist(art: Artifact, *, index: IndexOptions, python: tuple[int, int],
                     runner: Runner, discovery: Discovery, progress: Progress | None = None,
                     wheelhouse: Path | None = None, offline_hint: str | None = None) -> Path:
    """The wheel built from the sdist ``art``.

    Looked for in ``wheelhouse/built/<sha256>`` then in the cache's ``built/<sha256>``;
    else built with ``pip wheel`` under a tool interpreter of ``python`` and cached.
    With ``offline_hint`` nothing is built (a build may need the index for its build
    dependencies): a missing wheel is an ``InputError`` with that hint.
    """
    cached = cache_root() / BUILT
    dirs = [*([wheelhouse / BUILT] if wheelhouse is not None else []), cached]
    found = prebuilt_wheel(dirs, art.sha256)
    if found is not None:
        return found
    if offline_hint is not None:
        where = f"{wheelhouse / BUILT / art.sha256}" if wheelhouse else "the cache"
        raise InputError(
            f"{art.pin.key}: only its sdist {art.path.name} fits the target, and no wheel "
            f"built from it is in {where}; building one offline is not possible",
            hint=offline_hint,
        )
    (progress or NoProgress()).note(
        f"building a wheel from {art.path.name} (no wheel fits the target)")
    tool = PipTools(runner, discovery).tool_python(python)
    built = cached / art.sha256
    built.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=built.parent, prefix=f".{art.sha256}.", suffix=".tmp"))
    try:
        runner.run(
            [tool, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q",
             *index.pip_args(), "-w", tmp, art.path],
            env=clean_env({"SOURCE_DATE_EPOCH": str(SDIST_EPOCH), **index.env()}), timeout=1800,
            what=f"building a wheel of {art.pin.key}")
        if not list(tmp.glob("*.whl")):
            raise InputError(f"{art.pin.key}: building a wheel from {art.path.name} made no "
                             "wheel", hint="check the sdist's build backend")
        with contextlib.suppress(OSError):  # another build won the race: keep its wheel
            os.replace(tmp, built)
    except CommandFailed as exc:
        raise InputError(
            f"{art.pin.key}: no wheel fits the target and building one from "
            f"{art.path.name} failed",
            details=exc.details,
            hint="install the build dependencies it names, or raise [target] glibc so "
                 "that a published wheel fits",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(built.glob("*.whl"))[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class WheelhouseResult:
    wheelhouse: Path
    pins: int  # distinct pins of the locks
    wheels: int  # artifacts that are wheels
    sdists: int  # artifacts that are sdists
    built: int  # wheels built from those sdists
    added: int  # files written by this run
    present: int  # files already there, with the right content
    bytes: int  # total size of the wheelhouse files of these locks
    added_bytes: int


def _copy_in(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` under a temporary name in ``dest``'s directory + rename."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_PART)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _clean_leftovers(wheelhouse: Path) -> None:
    """Temporary files of an interrupted fetch."""
    for p in [*wheelhouse.glob(f".*{_PART}"), *(wheelhouse / BUILT).glob(f".*{_PART}")]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def fill(pins: Sequence[Pin], target: Target, index: IndexOptions, wheelhouse: Path, *,
         runner: Runner, discovery: Discovery, progress: Progress | None = None,
         on_file: Callable[[str], None] | None = None) -> WheelhouseResult:
    """Put into ``wheelhouse`` the artifact of every pin (hash-checked) and, for sdists,
    the wheel built from it. ``wheelhouse`` is a find-links source too, so a second run
    reuses what is there."""
    ensure_writable_dir(wheelhouse, what="wheelhouse")
    ensure_writable_dir(wheelhouse / BUILT, what="wheelhouse")
    _clean_leftovers(wheelhouse)
    unique = list({(p.name, p.version, p.hashes): p for p in pins}.values())
    sources = IndexOptions(index_url=index.index_url, cert=index.cert,
                           find_links=(*index.find_links, str(wheelhouse)))
    arts = Fetcher(sources, cache_root()).fetch(unique, target, progress=on_file)
    added = present = total = added_bytes = built = 0

    def place(src: Path, dest: Path, sha256: str) -> None:
        nonlocal added, present, total, added_bytes
        size = src.stat().st_size
        total += size
        if dest.is_file() and sha256_file(dest) == sha256:
            present += 1
            return
        _copy_in(src, dest)
        added += 1
        added_bytes += size

    for art in arts:
        check_hash(art.pin, sha256_file(art.path), art.path.name)  # again, before it is kept
        place(art.path, wheelhouse / art.path.name, art.sha256)
        if art.is_wheel:
            continue
        wheel = wheel_from_sdist(art, index=sources, python=target.python, runner=runner,
                                 discovery=discovery, progress=progress, wheelhouse=wheelhouse)
        built += 1
        dest_dir = wheelhouse / BUILT / art.sha256
        if wheel.parent == dest_dir:
            present += 1
            total += wheel.stat().st_size
            continue
        # A whole directory per sdist, renamed into place: never one without its wheel.
        tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{art.sha256}.",
                                    suffix=_PART))
        try:
            place(wheel, tmp / wheel.name, sha256_file(wheel))
            shutil.rmtree(dest_dir, ignore_errors=True)  # empty or stale
            os.replace(tmp, dest_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return WheelhouseResult(
        wheelhouse=wheelhouse, pins=len(unique),
        wheels=sum(1 for a in arts if a.is_wheel), sdists=sum(1 for a in arts if not a.is_wheel),
        built=built, added=added, present=present, bytes=total, added_bytes=added_bytes)
