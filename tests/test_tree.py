"""The bundle tree's rules (isolate.model.tree), which the writer and every reader share."""

from __future__ import annotations

import ast
import hashlib
import stat
from pathlib import Path

import pytest

import isolate
from isolate.model import tree


@pytest.mark.parametrize(("st_mode", "want"), [
    (0o100644, 0o644), (0o100600, 0o644), (0o100666, 0o644), (0o100700, 0o755),
    (0o100744, 0o755), (0o100001, 0o755), (0o104755, 0o755), (0o102711, 0o755),
    (0o101777, 0o755),
])
def test_a_file_is_0755_when_any_execute_bit_is_set_else_0644(st_mode: int, want: int) -> None:
    assert tree.normal_mode(st_mode) == want
    assert tree.file_mode(bool(st_mode & 0o111)) == want


def test_a_symlink_digest_is_that_of_its_target_text() -> None:
    assert tree.link_sha256("../lib/libx.so.1") == hashlib.sha256(b"../lib/libx.so.1").hexdigest()
    assert tree.link_size("../lib/libx.so.1") == 16
    assert tree.link_size("é") == 2  # bytes, not characters
    assert tree.link_sha256("\udcff") == hashlib.sha256(b"\xff").hexdigest()  # undecodable


@pytest.mark.parametrize(("st_mode", "want"), [
    (stat.S_IFIFO, "FIFO"), (stat.S_IFSOCK, "socket"), (stat.S_IFCHR, "device node"),
    (stat.S_IFBLK, "device node"),
])
def test_special_entries_are_named(st_mode: int, want: str) -> None:
    assert tree.special_kind(st_mode) == want


@pytest.mark.parametrize(("entry", "directory", "want"), [
    ("$ORIGIN", "/b/lib", "/b/lib"),
    ("$ORIGIN/", "/b/lib", "/b/lib"),
    ("${ORIGIN}/../lib", "/b/python/bin", "/b/python/lib"),
    ("$ORIGIN//x/./y", "/b", "/b/x/y"),
    ("$ORIGIN/../..", "lib", ".."),
    ("$ORIGIN/../lib", "", "../lib"),
    ("$ORIGIN", "", "."),
    ("$ORIGINAL/lib", "/b", None),
    ("/usr/lib", "/b", None),
    ("$LIB", "/b", None),
    ("lib", "/b", None),
])
def test_origin_entries_expand_relative_to_the_file(entry: str, directory: str,
                                                    want: str | None) -> None:
    assert tree.expand_origin(entry, directory) == want
    assert tree.is_origin_relative(entry) == (want is not None)


@pytest.mark.parametrize(("file_dir", "dep_dir"), [
    ("/b/lib", "/b/lib"), ("/b/python/bin", "/b/python/lib"), ("/b/x/y/z", "/b/lib"),
    ("/b", "/b/lib/sub"),
])
def test_an_origin_entry_written_expands_back_to_its_directory(file_dir: str,
                                                               dep_dir: str) -> None:
    entry = tree.origin_entry(file_dir, dep_dir)
    assert tree.is_origin_relative(entry)
    assert tree.expand_origin(entry, file_dir) == dep_dir


@pytest.mark.parametrize(("path", "root", "want"), [
    ("/b", "/b", True), ("/b/x", "/b", True), ("/b/x", "/b/", True), ("/bx", "/b", False),
    ("/a", "/b", False), ("/", "/", True), ("/x", "/", True),
])
def test_within_is_lexical_and_respects_component_boundaries(path: str, root: str,
                                                             want: bool) -> None:
    assert tree.within(path, root) is want


def test_resolves_within_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "in").symlink_to("d")
    (root / "out").symlink_to(tmp_path)
    real = str(root.resolve())
    assert tree.resolves_within(str(root / "in"), real)
    assert not tree.resolves_within(str(root / "out"), real)


@pytest.mark.parametrize(("rel", "want"), [
    ("..", True), ("../lib", True), ("lib", False), (".", False), ("..lib", False),
])
def test_leaves_root(rel: str, want: bool) -> None:
    assert tree.leaves_root(rel) is want


@pytest.mark.parametrize(("parent", "target", "want"), [
    ((), "a/b", False), ((), "..", True), (("a",), "..", False), (("a",), "../..", True),
    (("a",), "b/../../..", True), (("a", "b"), "./../../c", False), ((), "a/../b", False),
    ((), "a/../../b", True),
])
def test_link_escapes_checks_every_step(parent: tuple[str, ...], target: str,
                                        want: bool) -> None:
    assert tree.link_escapes(parent, target) is want


def test_mode_literals_live_only_in_the_tree_rules() -> None:
    """The file-mode rule is written once: no other module spells 0o755/0o644 as a
    choice on the execute bits."""
    pkg = Path(isolate.__file__).parent
    offenders = []
    for path in sorted(pkg.rglob("*.py")):
        if path == pkg / "model" / "tree.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.IfExp) and isinstance(node.body, ast.Constant)
                    and node.body.value == 0o755 and isinstance(node.orelse, ast.Constant)
                    and node.orelse.value == 0o644):
                offenders.append(f"{path.relative_to(pkg)}:{node.lineno}")
    assert offenders == []


def test_verify_reads_bundles_without_the_writers_modules() -> None:
    """verify needs the tree rules, the ELF facts (and their cache by content) and the
    unpacker; never the builder, the archive writer or the closure (which vendors and
    runs patchelf)."""
    pkg = Path(isolate.__file__).parent
    used: set[str] = set()
    for path in sorted((pkg / "verify").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            used.update(n for n in names if n.startswith("isolate.bundle."))
    modules = {n for n in used if (pkg / f"{n.replace('.', '/')[8:]}.py").is_file()}
    assert modules <= {"isolate.bundle.elf", "isolate.bundle.elf_cache",
                       "isolate.bundle.unpack"}, modules
