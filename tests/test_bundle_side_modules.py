"""The modules that run inside a bundle, under the bundle's own interpreter: real files,
valid for the oldest CPython a bundle carries, and runnable as isolate runs them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import isolate
from isolate.verify import probes

PKG = Path(isolate.__file__).parent
OLDEST = (3, 8)
BUNDLE_SIDE = ("matrix/probe.py", "verify/children_probe.py", "verify/isolation_probe.py",
               "verify/import_probe.py", "bundle/compile_worker.py")


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
