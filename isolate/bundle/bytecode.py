"""Deterministic, cached byte code for a bundle.

Every ``.py`` file gets an unchecked-hash ``.pyc`` (no timestamps) whose embedded file
name is relative to the bundle. A ``.pyc`` is a pure function of the interpreter's
magic number, the relative file name and the source (see ``compile_worker.py`` for how
marshal's output is made independent of process state), so it is cached under that key:
a warm build copies instead of compiling. The compiling is done by worker processes of
the bundle's own interpreter (``Compiler``), kept running for a whole build.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import queue
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isolate.proc import Runner, Worker, clean_env

_QUERY = "magic_probe.py"  # runs under the bundle's interpreter: magic number, cache tag


@dataclass(frozen=True, kw_only=True, slots=True)
class CompileStats:
    files: int
    cached: int
    compiled: int
    failed: int

    def __add__(self, other: CompileStats) -> CompileStats:
        return CompileStats(files=self.files + other.files, cached=self.cached + other.cached,
                            compiled=self.compiled + other.compiled,
                            failed=self.failed + other.failed)


def bytecode_tag(python: Path, runner: Runner) -> tuple[str, str]:
    """The interpreter's magic number (hex) and cache tag (``cpython-313``)."""
    query = importlib.resources.files("isolate.bundle").joinpath(_QUERY).read_text(
        encoding="utf-8")
    done = runner.run([python, "-I", "-B", "-c", query], env=clean_env(), timeout=60,
                      what="asking the bundled interpreter for its magic number")
    magic, tag = done.stdout.split()
    return magic, tag


class Compiler:
    """Byte code made by worker processes of the bundle's interpreter, kept running for
    a whole build: sources are handed in as they are installed (``submit``), each batch
    split into small chunks that the workers take in turn, so that compiling one wheel
    overlaps with downloading and installing the next, on every core.

    Each source's byte code is looked up in the cache first (``<cache>/pyc/<magic>/``,
    keyed by the magic number, the bundle-relative name and the source); what is
    compiled is added to it. The workers start at the first source that is not cached.
    Use it as a context manager: leaving it on an error kills the workers.
    """

    CHUNK = 24  # sources per request: small enough to spread a big wheel over the workers
    TIMEOUT = 3600.0  # seconds a chunk may take before its worker is killed

    def __init__(self, python: Path, *, cache: Path, runner: Runner,
                 tag: tuple[str, str], workers: int | None = None) -> None:
        self.python = python
        self.runner = runner
        self.magic, self.tag_name = tag
        self.store = cache / "pyc" / self.magic
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._queue: queue.Queue[tuple[str, Future[int]] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._procs: list[Worker] = []
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._closed = False

    def __enter__(self) -> Compiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)

    def _start(self) -> None:
        """The worker processes and the threads that feed them (once)."""
        with self._lock:
            if self._threads or self._closed:
                return
            self.store.mkdir(parents=True, exist_ok=True)
            self._tmp = tempfile.TemporaryDirectory(prefix="isolate-compile-")
            script = Path(self._tmp.name) / "compile_worker.py"
            script.write_text(importlib.resources.files("isolate.bundle").joinpath(
                "compile_worker.py").read_text(encoding="utf-8"))
            for _ in range(self.workers):
                proc = self.runner.start([self.python, "-B", "-s", "-E", script],
                                         env=clean_env(), what="compiling byte code")
                self._procs.append(proc)
                t = threading.Thread(target=self._feed, args=(proc,), daemon=True)
                t.start()
                self._threads.append(t)

    def _feed(self, proc: Worker) -> None:
        broken: BaseException | None = None  # once the worker died, what it is given fails
        while (item := self._queue.get()) is not None:
            request, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            if broken is not None:
                fut.set_exception(broken)
                continue
            try:
                fut.set_result(int(proc.ask(request, timeout=self.TIMEOUT)))
            except BaseException as exc:
                broken = exc
                fut.set_exception(exc)

    def _plan_one(self, root: Path, src: Path) -> list[str] | None:
        rel = src.relative_to(root).as_posix()
        data = src.read_bytes()
        key = hashlib.sha256(f"{self.magic}\0{rel}\0".encode() + data).hexdigest()
        pyc = src.parent / "__pycache__" / f"{src.stem}.{self.tag_name}.pyc"
        cached = self.store / key[:2] / key
        if cached.exists():
            pyc.parent.mkdir(exist_ok=True)
            shutil.copyfile(cached, pyc)
            return None
        return [str(src), str(pyc), rel, str(cached)]

    def plan(self, root: Path, files: list[Path]) -> tuple[list[list[str]], int]:
        """Copy the cached byte code of ``files``; the jobs for the others, and how
        many were cached."""
        if len(files) > 64:  # reading and hashing release the GIL
            with ThreadPoolExecutor(max_workers=8) as pool:
                jobs = list(pool.map(lambda f: self._plan_one(root, f), files))
        else:
            jobs = [self._plan_one(root, f) for f in files]
        todo = [j for j in jobs if j is not None]
        return todo, len(files) - len(todo)

    def submit(self, root: Path, files: list[Path], *,
               private: bool = False) -> Future[CompileStats]:
        """Byte code for ``files`` (sources below ``root``, whose relative names the byte
        code carries), cached or compiled; the future's stats count them.

        ``private``: nothing but this build reads or links the ``.pyc`` files' places
        yet (a staging directory of its own), so they are written in place rather than
        to a temporary file renamed over them.
        """
        todo, cached = self.plan(root, files)
        done: Future[CompileStats] = Future()
        done.set_running_or_notify_cancel()
        if not todo:
            done.set_result(CompileStats(files=len(files), cached=cached, compiled=0,
                                         failed=0))
            return done
        self._start()
        requests = [json.dumps({"jobs": todo[i:i + self.CHUNK], "private": private})
                    for i in range(0, len(todo), self.CHUNK)]
        parts: list[Future[int]] = [Future() for _ in requests]
        with self._lock:  # close() cannot come between: each chunk is taken or failed
            if self._closed:
                raise RuntimeError("the compiler is closed")
            for request, fut in zip(requests, parts, strict=True):
                self._queue.put((request, fut))
        left = [len(parts)]
        lock = threading.Lock()

        def one_done(_f: Future[int]) -> None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
            for f in parts:
                if f.cancelled():
                    done.set_exception(RuntimeError("compiling was cancelled"))
                    return
                if (exc := f.exception()) is not None:
                    done.set_exception(exc)
                    return
            failed = sum(f.result() for f in parts)
            done.set_result(CompileStats(files=len(files), cached=cached,
                                         compiled=len(todo) - failed, failed=failed))

        for fut in parts:
            fut.add_done_callback(one_done)
        return done

    def cancel_queued(self) -> None:
        """Drop the chunks no worker has taken yet (their batches fail); the chunks being
        compiled finish."""
        kept: list[None] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                kept.append(item)
            else:
                item[1].cancel()
        for item in kept:
            self._queue.put(item)

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers: after the work queued (or, with ``kill``, at once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if kill:
            for proc in self._procs:
                proc.kill()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        for proc in self._procs:
            proc.close()
        # what no feeder took (the workers died, or were killed) fails
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(RuntimeError("compiling was stopped"))
        if self._tmp is not None:
            self._tmp.cleanup()


def sources(dirs: list[Path], exclude: tuple[Path, ...] = ()) -> list[Path]:
    """The ``.py`` files below ``dirs``, outside ``exclude`` and ``__pycache__``."""
    skip = frozenset(str(e) for e in exclude)
    out: list[Path] = []
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if n != "__pycache__"
                                 and os.path.join(dirpath, n) not in skip)
            out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return out
