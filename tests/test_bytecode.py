"""isolate.bundle.bytecode.Compiler: byte code from worker processes kept running for a
build, the same bytes whatever each worker compiled before, with what fails saying so."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from isolate.bundle.bytecode import Compiler, CompileStats, bytecode_tag, sources
from isolate.errors import CommandFailed
from isolate.proc import Runner

PY = Path(sys.executable)


def _tree(root: Path, n: int = 60) -> list[Path]:
    """``n`` modules sharing names and constants (so that marshal's references would
    differ with the order they are compiled in, were they not made independent of it)."""
    pkg = root / "site" / "pkg"
    pkg.mkdir(parents=True)
    out = []
    for i in range(n):
        p = pkg / f"m{i:03d}.py"
        p.write_text(f"SHARED = 'shared-constant'\nNAME = 'm{i}'\n"
                     f"def f(x=SHARED):\n    return (x, NAME, {i}, 'shared-constant')\n"
                     + "".join(f"V{j} = ('shared-constant', {j % 7})\n" for j in range(i % 9)))
        out.append(p)
    return out


def _pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.pyc"))}


def _compile(root: Path, cache: Path, tag: tuple[str, str]) -> CompileStats:
    """Byte code for the sources below ``root``/site, by a compiler of its own."""
    with Compiler(PY, cache=cache, runner=Runner(), tag=tag) as comp:
        return comp.submit(root, sources([root / "site"])).result()


@pytest.fixture(scope="module")
def tag() -> tuple[str, str]:
    return bytecode_tag(PY, Runner())


def test_two_workers_in_any_order_give_the_bytes_one_file_at_a_time_gives(
        tmp_path: Path, tag: tuple[str, str]) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    files_a, files_b, files_c = _tree(a), _tree(b), _tree(c)
    with Compiler(PY, cache=tmp_path / "cache-a", runner=Runner(), tag=tag, workers=2) as comp:
        stats = comp.submit(a, files_a).result()
    assert stats == CompileStats(files=60, cached=0, compiled=60, failed=0)
    with Compiler(PY, cache=tmp_path / "cache-b", runner=Runner(), tag=tag, workers=3) as comp:
        halves = [comp.submit(b, files_b[::-1][:25]), comp.submit(b, files_b[::-1][25:])]
        assert sum((h.result() for h in halves), CompileStats(
            files=0, cached=0, compiled=0, failed=0)).compiled == 60
    for f in files_c:  # each file alone, in a fresh worker
        with Compiler(PY, cache=tmp_path / "cache-c", runner=Runner(), tag=tag,
                      workers=1) as comp:
            comp.submit(c, [f]).result()
    assert _pycs(a) == _pycs(b) == _pycs(c) and len(_pycs(a)) == 60
    # the byte code is valid: the interpreter imports it without the sources
    for f in files_a:
        f.unlink()
    pyc = next(iter((a / "site" / "pkg" / "__pycache__").glob("m007.*.pyc")))
    code = ("import importlib.util, sys, marshal; data = open(sys.argv[1], 'rb').read(); "
            "assert data[:4] == importlib.util.MAGIC_NUMBER; "
            "ns = {}; exec(marshal.loads(data[16:]), ns); print(ns['f']())")
    done = subprocess.run([sys.executable, "-c", code, str(pyc)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "('shared-constant', 'm7', 7, 'shared-constant')"
    assert importlib.util.MAGIC_NUMBER.hex() == tag[0]


def test_the_cache_serves_a_second_tree_and_what_is_not_python_3_is_counted(
        tmp_path: Path, tag: tuple[str, str]) -> None:
    cache = tmp_path / "cache"
    first, second = tmp_path / "one", tmp_path / "two"
    for root in (first, second):
        _tree(root, 5)
        (root / "site" / "pkg" / "py2.py").write_text("print 'python 2'\n")
    stats = _compile(first, cache, tag)
    assert stats == CompileStats(files=6, cached=0, compiled=5, failed=1)
    stats = _compile(second, cache, tag)
    assert stats == CompileStats(files=6, cached=5, compiled=0, failed=1)  # no worker ran
    assert _pycs(first) == _pycs(second)
    assert not list((second / "site" / "pkg" / "__pycache__").glob("py2.*"))
    assert sources([first / "site"]) == sorted((first / "site" / "pkg").glob("*.py"))


def test_a_worker_that_dies_fails_the_batch_and_closing_does_not_hang(
        tmp_path: Path, tag: tuple[str, str]) -> None:
    files = _tree(tmp_path / "t", 200)
    comp = Compiler(PY, cache=tmp_path / "cache", runner=Runner(), tag=tag, workers=2)
    try:
        comp._start()
        for proc in comp._procs:
            os.kill(proc._proc.pid, signal.SIGKILL)
        with pytest.raises(CommandFailed, match="compiling byte code failed"):
            comp.submit(tmp_path / "t", files).result(timeout=60)
    finally:
        comp.close()


def test_cancelled_work_fails_its_batch_and_a_killed_compiler_stops(
        tmp_path: Path, tag: tuple[str, str]) -> None:
    files = _tree(tmp_path / "t", 400)
    comp = Compiler(PY, cache=tmp_path / "cache", runner=Runner(), tag=tag, workers=1)
    try:
        batch = comp.submit(tmp_path / "t", files)
        comp.cancel_queued()
        with pytest.raises(RuntimeError, match="cancelled"):
            batch.result(timeout=60)
    finally:
        comp.close(kill=True)
    assert all(p._proc.returncode is not None for p in comp._procs)
    with pytest.raises(RuntimeError, match="closed"):
        comp.submit(tmp_path / "t", files)
