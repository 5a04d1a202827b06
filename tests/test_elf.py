"""The ELF layer, on real ELF files built with gcc in tmp_path.

The layout mimics a bundle: ``root/bin/app`` links ``root/lib/libtop.so``, which needs
``libdep.so.1`` from a build directory outside the bundle (found through an absolute
RPATH, as a pyenv build's ``bin/python3.12`` finds its libpython).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isolate.bundle import elf, elf_closure
from isolate.bundle.elf import (
    ElfFile,
    glibc_floor,
    is_elf,
    iter_elf_files,
    load_allowlist,
    read_elf,
    relative_path,
)
from isolate.bundle.elf_cache import ElfCache
from isolate.bundle.elf_closure import (
    ClosureResult,
    KnownSha256,
    Vendored,
    close_tree,
    find_patchelf,
    system_search_dirs,
)
from isolate.errors import InputError
from isolate.proc import Completed, Runner

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

DEP_C = "int dep_value(void) { return %d; }\n"
TOP_C = "int dep_value(void);\nint top_value(void) { return dep_value() + %d; }\n"
APP_C = (
    "#include <stdio.h>\n"
    "int top_value(void);\n"
    'int main(void) { printf("%d\\n", top_value()); return 0; }\n'
)


def gcc(out: Path, source: str, *args: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / f".{out.name}.c"
    src.write_text(source)
    subprocess.run(["gcc", "-o", str(out), str(src), *args], check=True, capture_output=True)
    src.unlink()
    return out


def dtags(new: bool) -> str:
    return "-Wl,--enable-new-dtags" if new else "-Wl,--disable-new-dtags"


def shared(out: Path, source: str, soname: str, *args: str) -> Path:
    return gcc(out, source, "-shared", "-fPIC", f"-Wl,-soname,{soname}", *args)


def run_app(app: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(app)], env=env or {}, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def digest_tree(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mode,
            )
    return out


class RecordingRunner(Runner):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, ...]] = []

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
        input: str | None = None,
        what: str | None = None,
    ) -> Completed:
        self.calls.append(tuple(os.fspath(a) for a in argv))
        return super().run(argv, env=env, cwd=cwd, timeout=timeout, check=check, input=input,
                           what=what)


@dataclass
class Tree:
    root: Path
    build: Path
    decoy: Path


def make_tree(tmp: Path, *, new_dtags: bool = False) -> Tree:
    """root/{bin/app, lib/libtop.so} needing build/libdep.so.1 via absolute RPATHs."""
    build, root, decoy = tmp / "build", tmp / "bundle", tmp / "decoy"
    shared(build / "libdep.so.1", DEP_C % 42, "libdep.so.1")
    shared(decoy / "libdep.so.1", DEP_C % 666, "libdep.so.1")
    shared(
        root / "lib" / "libtop.so", TOP_C % 1, "libtop.so",
        f"-L{build}", "-l:libdep.so.1", dtags(new_dtags), f"-Wl,-rpath,{build}",
    )
    gcc(
        root / "bin" / "app", APP_C,
        f"-L{root / 'lib'}", "-ltop", dtags(new_dtags), f"-Wl,-rpath,{root / 'lib'}",
    )
    return Tree(root=root, build=build, decoy=decoy)


def close(
    root: Path,
    runner: Runner | None = None,
    *,
    search_dirs: Sequence[Path] = (),
    host_provided: frozenset[str] = frozenset(),
    lib_dir: str = "lib",
) -> ClosureResult:
    return close_tree(root, lib_dir=lib_dir, search_dirs=search_dirs, allowlist=load_allowlist(),
                      host_provided=host_provided, runner=runner or Runner())


# --------------------------------------------------------------------------- reading


def test_read_elf_facts(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    top = read_elf(tree.root / "lib" / "libtop.so")
    assert isinstance(top, ElfFile)
    assert top.machine == platform.machine()
    assert top.soname == "libtop.so"
    assert "libdep.so.1" in top.needed
    assert top.rpath == (str(tree.build),)
    assert top.runpath == ()
    assert top.interpreter is None
    app = read_elf(tree.root / "bin" / "app")
    assert app.soname is None
    assert app.needed[:1] == ("libtop.so",) and "libc.so.6" in app.needed
    assert app.interpreter is not None and "ld-" in app.interpreter
    assert app.glibc_versions and all(v.startswith("GLIBC_2.") for v in app.glibc_versions)
    keys = [tuple(int(x) for x in v[6:].split(".")) for v in app.glibc_versions]
    assert keys == sorted(keys) and app.glibc_max == keys[-1]


def test_read_elf_runpath(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, new_dtags=True)
    top = read_elf(tree.root / "lib" / "libtop.so")
    assert top.runpath == (str(tree.build),)
    assert top.rpath == ()


def test_is_elf_rejects_non_elf(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.write_text("hello")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert not is_elf(text)
    assert not is_elf(empty)
    assert not is_elf(fifo)  # must not block
    assert not is_elf(tmp_path)
    assert not is_elf(tmp_path / "missing")
    assert is_elf(Path("/bin/sh").resolve())


def test_truncated_and_corrupt_elf_raise_input_error_naming_file(tmp_path: Path) -> None:
    lib = shared(tmp_path / "libdep.so.1", DEP_C % 1, "libdep.so.1")
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(lib.read_bytes()[:64])
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"\x7fELF" + b"\xff" * 200)
    for bad in (truncated, garbage):
        assert is_elf(bad)  # the magic is there ...
        with pytest.raises(InputError) as info:  # ... but it cannot be read
            read_elf(bad)
        assert str(bad) in info.value.message
        assert info.value.hint and str(bad) in info.value.hint
    with pytest.raises(InputError, match="missing"):
        read_elf(tmp_path / "missing")


def test_iter_elf_files_sorted_regular_only(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    (tree.root / "lib" / "README").write_text("not ELF")
    (tree.root / "lib" / "libtop.so.link").symlink_to("libtop.so")
    (tree.root / "outside").symlink_to(tree.build, target_is_directory=True)
    found = [p.relative_to(tree.root).as_posix() for p in iter_elf_files(tree.root)]
    assert found == ["bin/app", "lib/libtop.so"]


def test_allowlist_is_glibc_gcc_runtime_and_loaders() -> None:
    allow = load_allowlist()
    for name in ("libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                 "libutil.so.1", "libgcc_s.so.1", "libstdc++.so.6",
                 "libresolv.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"):
        assert allow.allows(name), name
    # hosts differ in these: a runtime carries its own
    for name in ("libcrypt.so.1", "libffi.so.8", "libssl.so.3", "libatomic.so.1", "libz.so.1",
                 "libexpat.so.1", "libX11.so.6"):
        assert not allow.allows(name), name


def test_system_search_dirs_parses_ld_so_conf(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    confd = tmp_path / "ld.so.conf.d"
    confd.mkdir()
    (confd / "2-b.conf").write_text(f"# comment\n{b}  # trailing comment\n")
    (confd / "1-a.conf").write_text(f"{a}\n{tmp_path / 'missing'}\n")
    conf = tmp_path / "ld.so.conf"
    conf.write_text(f"include ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n{c}:{a}\n")
    dirs = system_search_dirs(conf=conf)
    assert dirs[:3] == [a, b, c]  # include order, then the conf's own lines, no duplicates
    assert all(d.is_dir() for d in dirs)
    assert len({d.resolve() for d in dirs}) == len(dirs)
    assert any(d.name in ("lib", "lib64") or "linux-gnu" in d.name for d in dirs[3:])


def test_find_patchelf() -> None:
    tool = find_patchelf()
    assert tool.is_file() and os.access(tool, os.X_OK)


# --------------------------------------------------------------------------- closure


@pytest.mark.parametrize("new_dtags", [False, True], ids=["rpath", "runpath"])
def test_closure_vendors_and_relocates(tmp_path: Path, new_dtags: bool) -> None:
    tree = make_tree(tmp_path, new_dtags=new_dtags)
    runner = RecordingRunner()
    result = close(tree.root, runner)

    assert result.vendored == (
        Vendored(soname="libdep.so.1", dest="lib/libdep.so.1",
                 origin=tree.build / "libdep.so.1", needed_by=("lib/libtop.so",)),
    )
    assert result.patched == ("bin/app", "lib/libtop.so")
    assert result.unresolved == ()
    assert "libc.so.6" in result.system
    assert result.elf_files == 3
    copy = tree.root / "lib" / "libdep.so.1"
    assert (copy.stat().st_mode & 0o777) == 0o755
    assert copy.read_bytes() == (tree.build / "libdep.so.1").read_bytes()  # not patched
    app, top = read_elf(tree.root / "bin" / "app"), read_elf(tree.root / "lib" / "libtop.so")
    assert (app.rpath, app.runpath) == (("$ORIGIN/../lib",), ())
    assert (top.rpath, top.runpath) == (("$ORIGIN",), ())
    patchelf_calls = [c for c in runner.calls if "patchelf" in Path(c[0]).name]
    assert len(patchelf_calls) == 2  # one per distinct RPATH, only the files that change

    # Move the bundle and delete the build directory: it still runs.
    moved = tmp_path / "elsewhere" / "deeper" / "bundle"
    moved.parent.mkdir(parents=True)
    shutil.move(tree.root, moved)
    shutil.rmtree(tree.build)
    assert run_app(moved / "bin" / "app") == "43"
    # DT_RPATH is searched before LD_LIBRARY_PATH: the decoy is never loaded.
    assert run_app(moved / "bin" / "app", {"LD_LIBRARY_PATH": str(tree.decoy)}) == "43"


def test_ld_library_path_decoy_wins_over_runpath(tmp_path: Path) -> None:
    """The control for the decoy check above: with DT_RUNPATH the decoy would be loaded."""
    tree = make_tree(tmp_path)
    close(tree.root)
    patchelf = find_patchelf()
    for rel in ("bin/app", "lib/libtop.so"):
        path = tree.root / rel
        entries = ":".join(read_elf(path).rpath)
        subprocess.run([str(patchelf), "--set-rpath", entries, str(path)], check=True)
        assert read_elf(path).runpath  # now DT_RUNPATH
    assert run_app(tree.root / "bin" / "app", {"LD_LIBRARY_PATH": str(tree.decoy)}) == "667"


def test_closure_is_idempotent(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    first = close(tree.root)
    before = digest_tree(tree.root)
    runner = RecordingRunner()
    second = close(tree.root, runner)
    assert digest_tree(tree.root) == before
    assert runner.calls == []
    assert second.patched == () and second.vendored == () and second.unresolved == ()
    assert second.system == first.system
    assert second.elf_files == first.elf_files
    assert second.glibc_floor == first.glibc_floor


def test_prefers_copy_inside_bundle_over_rpath_target(tmp_path: Path) -> None:
    """Like pyenv's python3.12: an absolute RPATH to a build dir that has libtop.so too."""
    tree = make_tree(tmp_path)
    shared(tree.build / "libtop.so", TOP_C % 1000, "libtop.so",
           f"-L{tree.build}", "-l:libdep.so.1")
    gcc(tree.root / "bin" / "app", APP_C, f"-L{tree.build}", "-ltop", dtags(False),
        f"-Wl,-rpath,{tree.build}")
    result = close(tree.root)
    assert [v.soname for v in result.vendored] == ["libdep.so.1"]
    assert read_elf(tree.root / "bin" / "app").rpath == ("$ORIGIN/../lib",)
    assert run_app(tree.root / "bin" / "app") == "43"  # the bundle's libtop, not 1042


def test_vendors_from_search_dirs_and_transitively(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    syslib = tmp_path / "syslib"
    # libdep now needs libleaf.so.2, found only in the "system" dirs, with no RPATH.
    shared(syslib / "libleaf.so.2.0.1", "int leaf(void) { return 0; }\n", "libleaf.so.2")
    (syslib / "libleaf.so.2").symlink_to("libleaf.so.2.0.1")
    shared(tree.build / "libdep.so.1",
           "int leaf(void);\nint dep_value(void) { return 42 + leaf(); }\n", "libdep.so.1",
           f"-L{syslib}", "-l:libleaf.so.2")
    result = close(tree.root, search_dirs=[tmp_path / "nothing-here", syslib])
    by_soname = {v.soname: v for v in result.vendored}
    assert sorted(by_soname) == ["libdep.so.1", "libleaf.so.2"]
    leaf = by_soname["libleaf.so.2"]
    assert leaf.dest == "lib/libleaf.so.2"
    assert leaf.origin == syslib / "libleaf.so.2"
    assert leaf.needed_by == ("lib/libdep.so.1",)
    assert not (tree.root / "lib" / "libleaf.so.2").is_symlink()  # the real file, copied
    assert read_elf(tree.root / "lib" / "libdep.so.1").rpath == ("$ORIGIN",)
    assert "lib/libdep.so.1" in result.patched
    shutil.rmtree(syslib)
    assert run_app(tree.root / "bin" / "app") == "43"


def test_unresolved_soname_is_reported(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    shared(tree.build / "libgone.so.1", "int gone(void) { return 1; }\n", "libgone.so.1")
    gcc(tree.root / "bin" / "needs-gone",
        "int gone(void);\nint main(void) { return gone(); }\n",
        f"-L{tree.build}", "-l:libgone.so.1")
    (tree.build / "libgone.so.1").unlink()
    result = close(tree.root)
    assert result.unresolved == (("bin/needs-gone", "libgone.so.1"),)
    assert [v.soname for v in result.vendored] == ["libdep.so.1"]


def test_allowlisted_and_host_provided_libs_are_not_vendored(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    gcc(tree.root / "bin" / "mathy",
        "#include <math.h>\nint main(int c, char **v) { return (int)cos((double)c); }\n",
        "-lm")
    result = close(tree.root, host_provided=frozenset({"libdep.so.1"}))
    assert result.vendored == ()
    assert result.host_provided == ("libdep.so.1",)
    assert {"libc.so.6", "libm.so.6"} <= set(result.system)
    assert sorted(p.name for p in (tree.root / "lib").iterdir()) == ["libtop.so"]
    # libtop's absolute RPATH pointed outside the bundle and nothing inside is needed.
    top = read_elf(tree.root / "lib" / "libtop.so")
    assert top.rpath == () and top.runpath == ()
    assert result.patched == ("bin/app", "lib/libtop.so")
    assert "bin/mathy" not in result.patched


def test_relocatable_files_are_left_byte_identical(tmp_path: Path) -> None:
    """An auditwheel-style extension: RPATH $ORIGIN/../pkg.libs, library present."""
    root = tmp_path / "bundle"
    shared(root / "pkg.libs" / "libhashed-ab12.so", DEP_C % 1, "libhashed-ab12.so")
    shared(root / "pkg" / "ext.so", TOP_C % 1, "ext.so", f"-L{root / 'pkg.libs'}",
           "-l:libhashed-ab12.so", dtags(False), "-Wl,-rpath,$ORIGIN/../pkg.libs")
    shared(root / "pkg" / "plain.so", "int plain(void) { return 0; }\n", "plain.so")
    before = digest_tree(root)
    result = close(root)
    assert result.patched == () and result.vendored == ()
    assert digest_tree(root) == before


def test_patching_breaks_hard_links_and_keeps_modes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    top = tree.root / "lib" / "libtop.so"
    cache = tmp_path / "cache-libtop.so"
    os.link(top, cache)
    original = cache.read_bytes()
    top.chmod(0o444)
    result = close(tree.root)
    assert "lib/libtop.so" in result.patched
    assert cache.read_bytes() == original  # the other name of the inode is untouched
    assert read_elf(top).rpath == ("$ORIGIN",)
    assert (top.stat().st_mode & 0o777) == 0o444


def test_glibc_floor_names_the_file_and_skips_the_loader(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    shared(root / "lib" / "liba.so", '#include <stdio.h>\nvoid a(void) { puts("a"); }\n',
           "liba.so")
    shared(root / "lib" / "libb.so",
           "#include <sys/random.h>\n"
           "long b(char *p) { return getrandom(p, 4, 0); }\n", "libb.so")
    # A file named like the dynamic loader that needs a newer glibc must not count.
    loader = shared(root / "lib" / "ld-linux-x86-64.so.2",
                    "#define _GNU_SOURCE\n#include <unistd.h>\nvoid l(void) { closefrom(3); }\n",
                    "ld-linux-x86-64.so.2")
    loader_max = read_elf(loader).glibc_max
    assert loader_max is not None and loader_max >= (2, 34)
    files = [read_elf(p) for p in iter_elf_files(root)]
    assert glibc_floor(files, root) == ("2.25", "lib/libb.so", "GLIBC_2.25")
    assert close(root).glibc_floor == ("2.25", "lib/libb.so", "GLIBC_2.25")
    assert glibc_floor([], root) is None


def test_bad_lib_dir_is_input_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    with pytest.raises(InputError, match="lib_dir"):
        close(tree.root, lib_dir="../outside")


def test_internal_match_by_soname_needs_a_loadable_name(tmp_path: Path) -> None:
    """ld.so opens <dir>/<soname>: a real file with another name counts only via a symlink."""
    root = tmp_path / "bundle"
    leaf_c = "int leaf(void) { return 0; }\n"
    shared(root / "lib" / "libleaf.so.2.0.1", leaf_c, "libleaf.so.2")
    (root / "lib" / "libleaf.so.2").symlink_to("libleaf.so.2.0.1")
    shared(root / "pkg" / "ext.so", "int leaf(void);\nint ext(void) { return leaf(); }\n",
           "ext.so", f"-L{root / 'lib'}", "-l:libleaf.so.2")
    result = close(root)
    assert result.vendored == () and result.unresolved == ()
    assert read_elf(root / "pkg" / "ext.so").rpath == ("$ORIGIN/../lib",)

    (root / "lib" / "libleaf.so.2").unlink()  # no loadable name any more
    assert close(root).unresolved == (("pkg/ext.so", "libleaf.so.2"),)


def test_vendoring_onto_an_existing_non_library_is_input_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    (tree.root / "lib" / "libdep.so.1").write_text("not a library")
    with pytest.raises(InputError, match=r"libdep\.so\.1") as info:
        close(tree.root)
    assert info.value.hint and "lib/libdep.so.1" in info.value.hint


# --------------------------------------------------------------------------- facts by content


@dataclass
class Pristine:
    """A bundle tree before its closure: each run closes a fresh copy of it."""

    tree: Tree
    syslib: Path
    runs: int = 0

    def copy(self) -> Path:
        self.runs += 1
        dest = self.tree.root.parent / f"run-{self.runs}"
        shutil.copytree(self.tree.root, dest, symlinks=True)
        return dest


def make_pristine(tmp: Path) -> Pristine:
    """make_tree's bundle, where libdep (vendored from the build directory) needs libleaf
    from a "system" directory: two vendored copies, one of them patched, and both of the
    bundle's own files patched."""
    tree = make_tree(tmp)
    syslib = tmp / "syslib"
    shared(syslib / "libleaf.so.2", "int leaf(void) { return 0; }\n", "libleaf.so.2")
    shared(tree.build / "libdep.so.1",
           "int leaf(void);\nint dep_value(void) { return 42 + leaf(); }\n", "libdep.so.1",
           f"-L{syslib}", "-l:libleaf.so.2")
    return Pristine(tree=tree, syslib=syslib)


@dataclass
class Closed:
    root: Path
    result: ClosureResult
    parsed: list[str]  # the files parsed, bundle-relative (or absolute outside it), in order
    cache: ElfCache | None


def close_copy(pristine: Pristine, monkeypatch: pytest.MonkeyPatch, cache_dir: Path | None,
               *, known: KnownSha256 | None = None) -> Closed:
    """Close a fresh copy of ``pristine``, counting the ELF files parsed."""
    root = pristine.copy()
    parsed: list[str] = []
    real_parse = elf._parse

    def counting(path: Path, obj: object) -> ElfFile:
        parsed.append(relative_path(path, root) if path.is_relative_to(root) else str(path))
        return real_parse(path, obj)

    monkeypatch.setattr(elf, "_parse", counting)
    cache = ElfCache(cache_dir) if cache_dir is not None else None
    try:
        result = close_tree(root, lib_dir="lib", search_dirs=[pristine.syslib],
                            allowlist=load_allowlist(), runner=Runner(), cache=cache,
                            known_sha256=known)
    finally:
        monkeypatch.setattr(elf, "_parse", real_parse)
        if cache is not None:
            cache.close()
    return Closed(root=root, result=result, parsed=parsed, cache=cache)


def test_a_warm_closure_parses_no_elf_file_and_leaves_the_same_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pristine = make_pristine(tmp_path)
    without = close_copy(pristine, monkeypatch, None)
    assert {v.soname for v in without.result.vendored} == {"libdep.so.1", "libleaf.so.2"}
    assert without.result.patched == ("bin/app", "lib/libdep.so.1", "lib/libtop.so")
    assert run_app(without.root / "bin" / "app") == "43"

    cold = close_copy(pristine, monkeypatch, tmp_path / "elf")
    # the bundle's files, the build host's candidates and the three patched files
    assert sorted(cold.parsed) == sorted(without.parsed)
    assert cold.cache is not None and cold.cache.counts.parsed == len(cold.parsed) > 5
    warm = close_copy(pristine, monkeypatch, tmp_path / "elf")
    assert warm.parsed == []
    assert warm.cache is not None and warm.cache.counts.cached == len(cold.parsed)
    for run in (cold, warm):
        assert run.result == without.result
        assert digest_tree(run.root) == digest_tree(without.root)
        assert run_app(run.root / "bin" / "app") == "43"


def test_a_changed_file_is_parsed_again(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pristine = make_pristine(tmp_path)
    close_copy(pristine, monkeypatch, tmp_path / "elf")
    build = pristine.tree.build
    shared(pristine.tree.root / "lib" / "libtop.so", TOP_C % 2, "libtop.so",
           f"-L{build}", "-l:libdep.so.1", dtags(False), f"-Wl,-rpath,{build}")
    changed = close_copy(pristine, monkeypatch, tmp_path / "elf")
    # as found, then as patched: both are new content; nothing else is parsed
    assert changed.parsed == ["lib/libtop.so", "lib/libtop.so"]
    without = close_copy(pristine, monkeypatch, None)
    assert changed.result == without.result
    assert digest_tree(changed.root) == digest_tree(without.root)
    assert run_app(changed.root / "bin" / "app") == "44"


def test_a_tampered_cache_entry_is_ignored_and_the_tree_is_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pristine = make_pristine(tmp_path)
    without = close_copy(pristine, monkeypatch, None)
    cold = close_copy(pristine, monkeypatch, tmp_path / "elf")
    entries = sorted((tmp_path / "elf").glob("*/*.json"))
    assert len(entries) == len(cold.parsed)
    for entry in entries:  # as the user who owns the cache: the modes stay 0600
        data = json.loads(entry.read_text())
        # (facts that, used, would leave libforged unresolved and point the search away)
        data["facts"].update(needed=["libforged.so.1"], rpath=["/forged"], runpath=[])
        entry.write_text(json.dumps(data))
    tampered = close_copy(pristine, monkeypatch, tmp_path / "elf")
    assert sorted(tampered.parsed) == sorted(cold.parsed)
    assert tampered.cache is not None and tampered.cache.counts.cached == 0
    assert "does not match its checksum" in (tampered.cache.counts.ignored or "")
    assert tampered.result == without.result
    assert digest_tree(tampered.root) == digest_tree(without.root)
    assert run_app(tampered.root / "bin" / "app") == "43"
    # the entries were written again
    assert close_copy(pristine, monkeypatch, tmp_path / "elf").parsed == []

    shutil.rmtree(tmp_path / "elf")  # a deleted cache: the same again
    gone = close_copy(pristine, monkeypatch, tmp_path / "elf")
    assert gone.result == without.result
    assert digest_tree(gone.root) == digest_tree(without.root)


def test_the_hashes_known_already_are_not_computed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store knows the sha256 of the files it placed: the closure takes it."""
    pristine = make_pristine(tmp_path)
    root = pristine.tree.root
    shas = {relative_path(p, root): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in iter_elf_files(root)}
    asked: list[str] = []

    def known(rel: str, st: os.stat_result) -> str | None:
        asked.append(rel)
        return shas.get(rel)

    hashed: list[str] = []

    class Spy:
        @staticmethod
        def sha256(data: bytes) -> Any:
            hashed.append(hashlib.sha256(data).hexdigest())
            return hashlib.sha256(data)

    monkeypatch.setattr(elf_closure, "hashlib", Spy)
    cold = close_copy(pristine, monkeypatch, tmp_path / "elf", known=known)
    assert sorted(asked) == sorted(shas) == ["bin/app", "lib/libtop.so"]
    assert not set(hashed) & set(shas.values())
    assert len(hashed) == 5  # the two host libraries and the three patched files
    warm = close_copy(pristine, monkeypatch, tmp_path / "elf", known=known)
    assert warm.parsed == []
    assert warm.result == cold.result
    assert digest_tree(warm.root) == digest_tree(cold.root)
