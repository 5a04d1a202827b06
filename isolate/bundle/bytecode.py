"""Deterministic, cached byte code for a bundle.

Every ``.py`` file gets an unchecked-hash ``.pyc`` (no timestamps) whose embedded file
name is relative to the bundle. A ``.pyc`` is a pure function of the interpreter's
magic number, the relative file name and the source (see ``compile_worker.py`` for how
marshal's output is made independent of process state), so it is cached under that key:
a warm build copies instead of compiling.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isolate.proc import Runner, clean_env

WORKERS = 4
_QUERY = "magic_probe.py"  # runs under the bundle's interpreter: magic number, cache tag


@dataclass(frozen=True, kw_only=True, slots=True)
class CompileStats:
    files: int
    cached: int
    compiled: int
    failed: int


def _sources(dirs: list[Path], exclude: frozenset[str]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if n != "__pycache__"
                                 and os.path.join(dirpath, n) not in exclude)
            out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return out


def bytecode_tag(python: Path, runner: Runner) -> tuple[str, str]:
    """The interpreter's magic number (hex) and cache tag (``cpython-313``)."""
    query = importlib.resources.files("isolate.bundle").joinpath(_QUERY).read_text(
        encoding="utf-8")
    done = runner.run([python, "-I", "-B", "-c", query], env=clean_env(), timeout=60,
                      what="asking the bundled interpreter for its magic number")
    magic, tag = done.stdout.split()
    return magic, tag


def compile_tree(python: Path, root: Path, dirs: list[Path], *, cache: Path,
                 runner: Runner, exclude: tuple[Path, ...] = (),
                 tag: tuple[str, str] | None = None) -> CompileStats:
    """Byte code for every ``.py`` file below ``dirs`` but outside ``exclude``."""
    magic, tag_name = tag or bytecode_tag(python, runner)
    store = cache / "pyc" / magic
    files = _sources(dirs, frozenset(str(e) for e in exclude))

    def plan(src: Path) -> list[str] | None:
        rel = src.relative_to(root).as_posix()
        data = src.read_bytes()
        key = hashlib.sha256(f"{magic}\0{rel}\0".encode() + data).hexdigest()
        pyc = src.parent / "__pycache__" / f"{src.stem}.{tag_name}.pyc"
        cached = store / key[:2] / key
        if cached.exists():
            pyc.parent.mkdir(exist_ok=True)
            shutil.copyfile(cached, pyc)
            return None
        return [str(src), str(pyc), rel, str(cached)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        todo = [j for j in pool.map(plan, files) if j is not None]
    failed = 0
    if todo:
        store.mkdir(parents=True, exist_ok=True)
        worker = importlib.resources.files("isolate.bundle").joinpath("compile_worker.py")
        with tempfile.TemporaryDirectory(prefix="isolate-compile-") as tmp:
            script = Path(tmp) / "compile_worker.py"
            script.write_text(worker.read_text(encoding="utf-8"))
            chunks = [todo[i::WORKERS] for i in range(WORKERS)]
            job_files = []
            for i, chunk in enumerate(chunks):
                if chunk:
                    jf = Path(tmp) / f"jobs-{i}.json"
                    jf.write_text(json.dumps(chunk))
                    job_files.append(jf)

            def run(jf: Path) -> int:
                r = runner.run([python, "-B", "-s", "-E", script, jf], env=clean_env(),
                               timeout=3600, what="compiling byte code")
                return int(r.stdout.strip() or 0)

            with ThreadPoolExecutor(max_workers=len(job_files)) as pool:
                failed = sum(pool.map(run, job_files))
    return CompileStats(files=len(files), cached=len(files) - len(todo),
                        compiled=len(todo) - failed, failed=failed)
