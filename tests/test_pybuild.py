"""The source interpreter provider: interpreter locks, pinned downloads, the cross
compiler's floor, and what a failed build leaves behind (nothing but its log).

The real build of CPython (about 10 minutes on 2 cores) is proven in
tests/test_source_interpreter.py (slow) and by every Nova build.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from isolate.errors import CommandFailed, InputError
from isolate.proc import Runner
from isolate.pybuild import recipes
from isolate.pybuild.build import build_interpreter, fetch_source, find_cached
from isolate.pybuild.lock import REQUIRED_SOURCES, Source, load_interpreter_lock
from isolate.pybuild.toolchain import parse_glibc
from tests.conftest import REPO, invoke

BUILTIN_LOCK = REPO / "profiles" / "interpreters" / "cpython-3.13.toml"


def _tarball(directory: Path, name: str, files: dict[str, tuple[str, int]]) -> Path:
    """A .tar.gz with one top directory, like a release tarball."""
    path = directory / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size, info.mode, info.mtime = len(data), mode, 0
            tf.addfile(info, io.BytesIO(data))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_lock(path: Path, sources: dict[str, Path], *, python: str = "3.13",
                version: str = "3.13.5") -> Path:
    lines = [f'python = "{python}"', f'version = "{version}"', "", "[toolchain]",
             'compiler = "ziglang"', 'compiler_version = "0.17.0"', 'glibc = "2.17"', ""]
    for name, tarball in sources.items():
        lines += [f"[sources.{name}]", 'version = "1.0"', f'url = "file://{tarball}"',
                  f'sha256 = "{_sha(tarball)}"', ""]
    path.write_text("\n".join(lines))
    return path


def test_the_builtin_lock_pins_every_source_by_sha256() -> None:
    lock = load_interpreter_lock(BUILTIN_LOCK)
    assert lock.python == "3.13" and lock.version.startswith("3.13.")
    assert {s.name for s in lock.sources} == set(REQUIRED_SOURCES)
    for s in lock.sources:
        assert len(s.sha256) == 64 and s.url.startswith("https://deb.debian.org/debian/pool/")
    # every source has a recipe, and CPython comes last
    assert set(recipes.ORDER) == set(REQUIRED_SOURCES) and recipes.ORDER[-1] == "cpython"


def test_a_broken_lock_names_every_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "cpython-3.13.toml"
    bad.write_text('python = "3.13"\nversion = "3.12.1"\ncolour = 1\n[toolchain]\n'
                   'compiler = "gcc"\ncompiler_version = "1"\nglibc = "two"\n'
                   '[sources.zlib]\nversion = "1.3"\nurl = "ftp://x"\nsha256 = "abc"\n'
                   '[sources.left-pad]\nversion = "1"\nurl = "https://x/y"\nsha256 = "00"\n')
    with pytest.raises(InputError) as e:
        load_interpreter_lock(bad)
    text = e.value.message + (e.value.details or "")
    for fragment in ("colour: unknown key", "version: '3.12.1' is not a 3.13 release",
                     "toolchain.compiler: 'gcc'", "toolchain.glibc", "sources.zlib.url",
                     "sources.zlib.sha256", "sources.left-pad: isolate has no recipe",
                     "sources.openssl: missing", str(bad)):
        assert fragment in text, fragment


def test_a_tarball_whose_sha256_differs_is_refused_and_not_kept(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "zlib-1.0", {"configure": ("#!/bin/sh\n", 0o755)})
    wrong = "0" * 64
    source = Source(name="zlib", version="1.0", url=f"file://{tarball}", sha256=wrong)
    cache = tmp_path / "cache"
    with pytest.raises(InputError) as e:
        fetch_source(source, cache)
    assert "does not match the interpreter lock" in e.value.message
    assert _sha(tarball) in (e.value.details or "") and wrong in (e.value.details or "")
    assert not [p for p in (cache / "sources").rglob("*") if p.is_file()]


def test_a_pinned_tarball_is_downloaded_once(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "zlib-1.0", {"configure": ("#!/bin/sh\n", 0o755)})
    source = Source(name="zlib", version="1.0", url=f"file://{tarball}", sha256=_sha(tarball))
    first = fetch_source(source, tmp_path / "cache")
    tarball.unlink()  # the second call must not need the origin
    assert fetch_source(source, tmp_path / "cache") == first


@pytest.mark.parametrize("glibc", ["2.5", "2.16", "1.0"])
def test_a_glibc_below_the_compilers_is_refused(glibc: str) -> None:
    with pytest.raises(InputError) as e:
        parse_glibc(glibc)
    assert "below what the cross compiler supports" in e.value.message
    assert "2.17" in e.value.message


def test_python_build_refuses_a_version_without_a_lock() -> None:
    r = invoke(["--root", REPO, "python", "build", "3.9", "--no-selftest"])
    assert r.code == 2
    assert "no interpreter lock for CPython 3.9" in r.output and "3.13" in r.output


def test_python_build_refuses_a_glibc_below_the_compilers() -> None:
    r = invoke(["--root", REPO, "python", "build", "3.13", "--glibc", "2.12"])
    assert r.code == 2
    assert "glibc 2.12 is below what the cross compiler supports" in r.output


def test_a_compiler_failure_shows_the_logs_end_and_caches_nothing(tmp_path: Path) -> None:
    """Every recipe's first command fails here (a configure that exits 1, a Makefile with
    no target): the error quotes the log's last lines, keeps the whole log, and leaves no
    cache entry and no build directory."""
    failing = ("#!/bin/sh\necho 'checking for a working compiler... no' >&2\n"
               "echo 'configure: error: C compiler cannot create executables' >&2\nexit 1\n")
    sources = {}
    for name in REQUIRED_SOURCES:
        sources[name] = _tarball(tmp_path, f"{name}-1.0", {
            "configure": (failing, 0o755), "Configure": (failing, 0o755),
            "Makefile": ("all:\n\tfalse\n", 0o644), "VERSION": ("1.0\n", 0o644),
            "Programs/python.c": ("", 0o644),
            "Modules/getbuildinfo.c": ("const char *d = __DATE__;\n", 0o644)})
    lock = load_interpreter_lock(_write_lock(tmp_path / "cpython-3.13.toml", sources))
    cache = tmp_path / "cache"
    with pytest.raises(CommandFailed) as e:
        build_interpreter(lock, runner=Runner(), cache=cache, jobs=1, run_selftest=False)
    err = e.value
    assert "failed" in err.message
    assert "C compiler cannot create executables" in (err.details or "")
    assert err.hint and "the whole log is" in err.hint and "nothing was cached" in err.hint
    log = Path(err.hint.split("the whole log is ")[1].split(";")[0])
    assert log.is_file() and "cannot create executables" in log.read_text()
    assert find_cached(lock, glibc="2.17", cache=cache) is None
    left = [p.name for p in (cache / "interpreters").iterdir() if p.name != "logs"
            and not p.name.endswith(".lock")]
    assert left == []
