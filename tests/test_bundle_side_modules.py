"""The modules that run under another interpreter than isolate's (a bundle's, a source
CPython's, every interpreter on the machine): real files, valid for the oldest Python they
run on, and runnable as isolate runs them."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import isolate
from isolate import interpreters
from isolate.bundle import bytecode, interpreter, isolated_main
from isolate.interpreters import Discovery
from isolate.proc import Runner
from isolate.pybuild import build as pybuild
from isolate.verify import probes

PKG = Path(isolate.__file__).parent
OLDEST = (3, 8)
BUNDLE_SIDE = ("matrix/probe.py", "verify/children_probe.py", "verify/isolation_probe.py",
               "verify/import_probe.py", "bundle/compile_worker.py", "bundle/interpreter_probe.py",
               "bundle/site_probe.py", "bundle/magic_probe.py", "bundle/isolated_probe.py",
               "pybuild/modules_probe.py", "interpreters_probe.py")
# Runs under every interpreter on the machine, down to Python 2.7 (and 2.4 in principle)
EVERY_PYTHON = "interpreters_probe.py"


@pytest.mark.parametrize("rel", BUNDLE_SIDE)
def test_bundle_side_module_parses_as_the_oldest_python(rel: str) -> None:
    source = (PKG / rel).read_text(encoding="utf-8")
    ast.parse(source, filename=rel, feature_version=OLDEST)


def test_verify_probes_are_real_modules_not_strings() -> None:
    text = Path(probes.__file__).read_text(encoding="utf-8")
    assert ".replace(\"NAMES\"" not in text and "_IMPORT_PROBE" not in text
    assert (PKG / "verify" / probes.ISOLATION_PROBE).is_file()
    assert (PKG / "verify" / probes.IMPORT_PROBE).is_file()


def test_import_probe_records_each_module(tmp_path: Path) -> None:
    code = (PKG / "verify" / probes.IMPORT_PROBE).read_text(encoding="utf-8")
    results = tmp_path / "results.jsonl"
    subprocess.run([sys.executable, "-I", "-B", "-W", "ignore", "-c", code, str(results)],
                   input=json.dumps(["colorsys", "isolate_no_such_module"]), text=True,
                   check=True, cwd=tmp_path, timeout=60)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert lines[0] == {"start": "colorsys"}
    assert lines[1] == {"module": "colorsys", "ok": True}
    assert lines[3]["module"] == "isolate_no_such_module" and lines[3]["ok"] is False
    assert lines[3]["missing"] == "isolate_no_such_module"
    assert lines[3]["missing_found"] is False


def test_isolation_probe_reports_one_marked_line(tmp_path: Path) -> None:
    code = (PKG / "verify" / probes.ISOLATION_PROBE).read_text(encoding="utf-8")
    mark = "@@mark@@ "
    line = f"exec(compile({code!r}, '<isolate-verify>', 'exec')); probe(('colorsys',), {mark!r})\n"
    done = subprocess.run([sys.executable, "-I", "-B", "-i"], input=line, text=True,
                          capture_output=True, check=True, cwd=tmp_path, timeout=60)
    marked = [x for x in done.stdout.splitlines() if x.startswith(mark)]
    assert len(marked) == 1
    data = json.loads(marked[0][len(mark):])
    assert data["isolated"] == 1 and data["modules"]["colorsys"].endswith("colorsys.py")
    assert data["prefix"] == sys.prefix and data["loaded"]


def test_no_module_runs_code_from_a_string() -> None:
    """The modules that start an interpreter on a probe read it from its file: none holds
    Python source in a string (the _sysconfigdata suffix is written, not run)."""
    for module in (interpreter, bytecode, isolated_main, interpreters, pybuild):
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        code = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                and isinstance(n.value, str) and n.value.lstrip().startswith(("import ", "print("))
                and "_isolate_sys" not in n.value]
        assert code == [], module.__name__


def test_every_python_probe_is_ascii() -> None:
    """Python 2 reads a -c program without a coding line as ASCII."""
    (PKG / EVERY_PYTHON).read_bytes().decode("ascii")


def _old_pythons() -> list[Path]:
    """Interpreters older than 3.8 on this machine (pyenv's), the ones only discovery runs."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for d in sorted(root.glob("[23].*")) if root.is_dir() else []:
        parts = d.name.split(".")
        if parts[0].isdigit() and parts[1].isdigit() and (int(parts[0]), int(parts[1])) < (3, 8):
            exe = d / "bin" / ("python" + ".".join(parts[:2]))
            if exe.is_file():
                found.append(exe)
    return found


@pytest.mark.parametrize("python", _old_pythons() or [None], ids=lambda p: p.parent.parent.name
                         if p else "none")
def test_discovery_describes_old_pythons(python: Path | None, tmp_path: Path) -> None:
    if python is None:
        pytest.skip("no Python older than 3.8 in pyenv's versions on this machine")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / python.name).symlink_to(python)
    found = Discovery(Runner(), env={"PATH": str(bindir), "PYENV_ROOT": str(tmp_path)}).all()
    want = tuple(int(p) for p in python.name[len("python"):].split("."))
    assert [(i.path, i.minor, i.implementation) for i in found] == [
        (python.resolve(), want, "CPython")]
    assert found[0].prefix == python.resolve().parent.parent


def test_discovery_describes_this_python(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    found = Discovery(Runner(), env={"PATH": str(bindir), "PYENV_ROOT": str(tmp_path)}).all()
    assert [(i.path, i.version, i.prefix) for i in found] == [
        (Path(sys.executable).resolve(), tuple(sys.version_info[:3]), Path(sys.base_prefix))]


def test_describe_reads_sysconfig_of_the_interpreter() -> None:
    src = interpreter.describe(Runner(), Path(sys.executable), source="test")
    assert src.version == ".".join(map(str, sys.version_info[:3]))
    assert src.prefix == Path(sys.base_prefix)
    assert src.stdlib == Path(sysconfig.get_path("stdlib"))
    assert src.sysconfigdata == sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
    assert src.executable == Path(os.path.realpath(sys.executable))


def test_site_probe_names_the_interpreters_site_packages() -> None:
    stdlib = Path(sysconfig.get_path("stdlib"))
    site = interpreter._site_packages(Runner(), Path(sys.executable), stdlib)
    assert site.parent == stdlib and site.name in ("site-packages", "dist-packages")


def test_isolated_probe_says_whether_the_interpreter_isolates_itself() -> None:
    assert isolated_main.isolated_by_itself(Runner(), Path(sys.executable)) is False


def test_modules_probe_names_what_does_not_import() -> None:
    code = (PKG / "pybuild" / "modules_probe.py").read_text(encoding="utf-8")
    done = subprocess.run([sys.executable, "-B", "-c", code, "json", "isolate_no_such_module"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == [
        "isolate_no_such_module (No module named 'isolate_no_such_module')"]
    assert pybuild._missing_modules(Runner(), Path(sys.executable)) == []


def test_magic_probe_gives_the_key_of_the_byte_code_cache(tmp_path: Path) -> None:
    src = tmp_path / "pkg" / "m.py"
    src.parent.mkdir()
    src.write_text("x = 1\n")
    tag = bytecode.bytecode_tag(Path(sys.executable), Runner())
    with bytecode.Compiler(Path(sys.executable), cache=tmp_path / "cache", runner=Runner(),
                           tag=tag) as comp:
        stats = comp.submit(tmp_path, bytecode.sources([src.parent])).result()
    assert stats.compiled == 1
    magic = importlib.util.MAGIC_NUMBER.hex()
    assert [p.parent.name for p in (tmp_path / "cache" / "pyc").glob("*/*/*")] != []
    assert (tmp_path / "cache" / "pyc" / magic).is_dir()
    assert (src.parent / "__pycache__" / f"m.{sys.implementation.cache_tag}.pyc").is_file()
