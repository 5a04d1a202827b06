"""The runtime's sys.executable compiled from isolated_main.c: the link, the cache, and
the errors that say what to install."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from isolate.bundle import isolated_main
from isolate.bundle.elf import read_elf
from isolate.bundle.interpreter import SourceInterpreter, describe
from isolate.errors import EnvironmentProblem
from isolate.interpreters import Discovery
from isolate.proc import Runner

DEBIAN = Path("/usr/bin/python3.11")


def shared_source() -> SourceInterpreter:
    for interp in reversed(list(Discovery(Runner()).by_minor().values())):
        if (interp.prefix / "lib" / f"libpython{interp.minor_text}.so.1.0").exists():
            return describe(Runner(), interp.path, source="test")
    pytest.skip("needs a shared-libpython CPython (pyenv builds are)")


def static_source() -> SourceInterpreter:
    if not DEBIAN.exists() or any(n.startswith("libpython") for n in read_elf(DEBIAN).needed):
        pytest.skip(f"needs Debian's statically linked {DEBIAN}")
    return describe(Runner(), DEBIAN, source="test")


def home_with_libpython(src: SourceInterpreter, tmp: Path) -> Path:
    home = tmp / "python"
    (home / "lib").mkdir(parents=True)
    shutil.copy(src.libdir / src.instsoname, home / "lib" / src.instsoname)
    return home


def test_a_compiled_main_is_cached_and_reproducible(tmp_path: Path) -> None:
    src = shared_source()
    home = home_with_libpython(src, tmp_path)
    runner = Runner()
    cc = isolated_main.find_compiler(runner)
    first, cached = isolated_main.build_program(src, home, compiler=cc, cache=tmp_path / "c1",
                                                runner=runner)
    assert not cached
    again, cached = isolated_main.build_program(src, home, compiler=cc, cache=tmp_path / "c1",
                                                runner=runner)
    assert cached and again == first
    other, _ = isolated_main.build_program(src, home, compiler=cc, cache=tmp_path / "c2",
                                           runner=runner)
    assert other.read_bytes() == first.read_bytes()  # no path or time of the build inside
    info = read_elf(first)
    assert info.rpath == ("$ORIGIN/../lib",) and not info.runpath
    assert src.instsoname in info.needed
    assert str(tmp_path).encode() not in first.read_bytes()


def test_another_compiler_is_another_cache_entry(tmp_path: Path) -> None:
    src = shared_source()
    home = home_with_libpython(src, tmp_path)
    runner = Runner()
    cc = isolated_main.find_compiler(runner)
    a, _ = isolated_main.build_program(src, home, compiler=cc, cache=tmp_path, runner=runner)
    b, cached = isolated_main.build_program(
        src, home, compiler=dataclasses.replace(cc, identity=cc.identity + " (patched)"),
        cache=tmp_path, runner=runner)
    assert not cached and a.parent != b.parent


def test_a_static_interpreter_links_its_static_libpython(tmp_path: Path) -> None:
    src = static_source()
    runner = Runner()
    try:
        program, _ = isolated_main.build_program(
            src, tmp_path, compiler=isolated_main.find_compiler(runner), cache=tmp_path,
            runner=runner)
    except EnvironmentProblem as exc:
        pytest.skip(f"Debian's libpython3.11-dev is not installed: {exc.message}")
    info = read_elf(program)
    assert not any(n.startswith("libpython") for n in info.needed)
    assert set(read_elf(DEBIAN).needed) == set(info.needed)  # the same libraries as Debian's


def test_a_static_interpreter_without_its_static_libpython_says_what_to_install(
        tmp_path: Path) -> None:
    src = dataclasses.replace(static_source(), libpl=tmp_path, libdir=tmp_path)
    runner = Runner()
    with pytest.raises(EnvironmentProblem) as err:
        isolated_main.build_program(src, tmp_path, compiler=isolated_main.find_compiler(runner),
                                    cache=tmp_path, runner=runner)
    assert "linked statically to libpython" in err.value.message
    assert "libpython3.11.a is not installed" in err.value.message
    assert "apt-get install libpython3.11-dev" in (err.value.hint or "")


def test_missing_headers_say_what_to_install(tmp_path: Path) -> None:
    src = dataclasses.replace(shared_source(), include=tmp_path / "include")
    runner = Runner()
    with pytest.raises(EnvironmentProblem) as err:
        isolated_main.build_program(src, tmp_path, compiler=isolated_main.find_compiler(runner),
                                    cache=tmp_path, runner=runner)
    assert "headers (Python.h) are not installed" in err.value.message
    assert f"libpython{src.xy}-dev" in (err.value.hint or "")


def test_no_compiler_says_what_to_install() -> None:
    with pytest.raises(EnvironmentProblem) as err:
        isolated_main.find_compiler(Runner(), "isolate-no-such-cc")
    assert "no C compiler" in err.value.message and "apt-get install gcc" in (err.value.hint or "")


def test_a_plain_interpreter_is_not_isolated_by_itself() -> None:
    src = shared_source()
    assert not isolated_main.isolated_by_itself(Runner(), src.executable)


@pytest.mark.parametrize(("args", "kept"), [
    (("-ldl", "-L/p/lib", "-Wl,-rpath,/p/lib", "-lm"), ["-ldl", "-L/p/lib", "-lm"]),
    (("-Wl,-rpath", "-Wl,/p/lib", "-lm"), ["-lm"]),
    (("-Xlinker", "-rpath", "-Xlinker", "/p/lib", "-lz"), ["-lz"]),
    (("-Xlinker", "-export-dynamic", "-Wl,-R/p"), ["-Xlinker", "-export-dynamic"]),
])
def test_build_host_search_paths_are_left_out(args: tuple[str, ...], kept: list[str]) -> None:
    assert isolated_main._without_rpath(args) == kept
