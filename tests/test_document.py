"""Reading back the documents isolate writes: a damaged manifest or results file is an
``InputError`` whose message names the key path of the problem."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from isolate.errors import DocumentError, ExitCode, InputError
from isolate.matrix.execute import open_bundle
from isolate.model.document import Reader
from isolate.model.manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestError
from isolate.model.manifest import SCHEMA as MANIFEST_SCHEMA
from isolate.model.results import SCHEMA as RESULTS_SCHEMA
from isolate.model.results import Results, ResultsError
from isolate.sbom import render

MANIFEST: dict[str, Any] = {
    "schema": MANIFEST_SCHEMA, "name": "app-1.0-cp312-manylinux_2_17_x86_64", "runtime": "app",
    "version": "1.0", "python_tag": "cp312", "platform": "manylinux_2_17_x86_64",
    "arch": "x86_64", "tool_version": "0.1.0", "profile_sha256": "a" * 64,
    "lock_sha256": "b" * 64, "test_lock_sha256": None, "build_marker": ".isolate-build-",
    "interpreter": {"version": "3.12.1", "source": "local:/usr/bin/python3.12",
                    "executable": "python/bin/python3.12", "stdlib": "python/lib/python3.12",
                    "site_packages": "python/lib/python3.12/site-packages"},
    "distributions": [{"name": "app", "version": "1.0", "sha256": "c" * 64,
                       "filename": "app-1.0-py3-none-any.whl"}],
    "scripts": ["app"],
    "elf": {"glibc_floor": "2.17", "glibc_floor_file": "python/bin/python3.12",
            "glibc_floor_symbol": "GLIBC_2.17",
            "floors": {"glibc": {"version": "2.17", "symbol": "GLIBC_2.17",
                                 "file": "python/bin/python3.12"}},
            "vendored": [{"soname": "libffi.so.8", "path": "lib/libffi.so.8",
                          "origin": "/usr/lib/libffi.so.8", "needed_by": ["x.so"]}]},
    "contract": {"allowed_incompatible": [{"host": "rhel-8", "reasons": ["glibc"]}]},
    "tests": {"command": ["python", "-m", "unittest"], "timeout": 60},
    "files": [{"path": f"f{i}", "sha256": "d" * 64, "mode": "0644", "size": i}
              for i in range(1300)],
}


def _results(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": RESULTS_SCHEMA, "bundle": {"name": "b"}, "required_hosts": [],
            "cells": cells}


CELL: dict[str, Any] = {
    "host": "debian-12", "executor": "local", "required": True,
    "predicted": {"verdict": "compatible"},
    "observed": {"status": "passed", "tests": {"t": "passed"}, "seconds": 1.5},
    "differences": {"tests": [{"test": "t", "baseline": "passed", "cell": "failed"}]},
}


def test_good_documents_read_back() -> None:
    m = Manifest.loads(json.dumps(MANIFEST))
    assert len(m.files) == 1300 and m.elf.floor("glibc") is not None
    assert Manifest.loads(m.dumps()).to_dict() == m.to_dict()
    r = Results.loads(json.dumps(_results([CELL])))
    assert Results.loads(r.dumps()).to_dict() == r.to_dict()


def _broken(doc: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> str:
    data = copy.deepcopy(doc)
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["files"][1203].pop("sha256"), "files[1203].sha256: missing"),
    (lambda d: d["files"][7].update(mode="rw-r--r--"),
     "files[7].mode: bad value 'rw-r--r--': invalid literal for int() with base 8"),
    (lambda d: d["files"][2].update(size=None), "files[2].size: bad value None: "),
    (lambda d: d["files"].__setitem__(5, "f5"), "files[5]: expected an object, got a string"),
    (lambda d: d.update(files={}), "files: expected a list, got an object"),
    (lambda d: d.pop("name"), "name: missing"),
    (lambda d: d.update(interpreter=[]), "interpreter: expected an object, got a list"),
    (lambda d: d["interpreter"].pop("stdlib"), "interpreter.stdlib: missing"),
    (lambda d: d["elf"]["floors"]["glibc"].pop("symbol"), "elf.floors.glibc.symbol: missing"),
    (lambda d: d["elf"]["vendored"][0].pop("origin"), "elf.vendored[0].origin: missing"),
    (lambda d: d["contract"]["allowed_incompatible"][0].pop("host"),
     "contract.allowed_incompatible[0].host: missing"),
    (lambda d: d["tests"].update(timeout="soon"), "tests.timeout: bad value 'soon'"),
    (lambda d: d.update(schema="isolate.manifest/0"),
     "schema: expected 'isolate.manifest/1', got 'isolate.manifest/0'"),
])
def test_a_damaged_manifest_names_the_key_path(change: Callable[[dict[str, Any]], object],
                                                message: str) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.loads(_broken(MANIFEST, change))
    assert str(info.value).startswith(message)
    assert isinstance(info.value, InputError) and info.value.exit_code == ExitCode.USAGE
    assert info.value.hint and "rebuild the bundle" in info.value.hint


@pytest.mark.parametrize(("text", "message"), [
    (b"\xff{}", "not UTF-8 text"), ("{", "not JSON"), ("[" * 100_000, "not JSON"),
    ("[]", "not a JSON object"),
])
def test_a_manifest_that_is_not_a_json_object(text: str | bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.loads(text)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.pop("executor"), "r.json: cells[0].executor: missing"),
    (lambda c: c["observed"].pop("status"), "r.json: cells[0].observed.status: missing"),
    (lambda c: c["observed"].update(seconds="soon"),
     "r.json: cells[0].observed.seconds: bad value 'soon'"),
    (lambda c: c.update(required="yes"),
     "r.json: cells[0].required: expected true or false, got 'yes'"),
    (lambda c: c["differences"]["tests"][0].pop("cell"),
     "r.json: cells[0].differences.tests[0].cell: missing"),
    (lambda c: c.update(predicted=None), "r.json: cells[0].predicted: expected an object, got null"),
])
def test_a_damaged_results_file_names_the_file_and_key_path(
        change: Callable[[dict[str, Any]], object], message: str) -> None:
    cell = copy.deepcopy(CELL)
    change(cell)
    with pytest.raises(ResultsError) as info:
        Results.loads(json.dumps(_results([cell])), where="r.json")
    assert str(info.value).startswith(message)
    assert isinstance(info.value, InputError)


def test_results_top_level_problems_name_the_key() -> None:
    bad = _results([CELL]) | {"required_hosts": "debian-12"}
    with pytest.raises(ResultsError, match=r"^r\.json: required_hosts: expected a list of "
                                           r"strings, got 'debian-12'$"):
        Results.loads(json.dumps(bad), where="r.json")
    with pytest.raises(ResultsError, match=r"^r\.json: schema is 'isolate\.results/1'"):
        Results.loads(json.dumps(_results([]) | {"schema": "isolate.results/1"}),
                      where="r.json")


def test_document_errors_keep_key_and_reason_apart() -> None:
    err = DocumentError("missing", key="sha256").under("[3]").under("files").located("m.json")
    assert str(err) == "m.json: files[3].sha256: missing"
    assert (err.where, err.key, err.reason) == ("m.json", "files[3].sha256", "missing")


def test_a_reader_reads_alone_or_nested() -> None:
    r = Reader({"a": {"b": [1, {"c": "x"}]}}, DocumentError)
    assert r.value("missing", int, 7) == 7
    with pytest.raises(DocumentError, match=r"^a\.b\[0\]: expected an object, got a number$"):
        r.obj("a", lambda a: a.objs("b", lambda x: x.raw("c")))


def test_readers_of_a_damaged_manifest_pass_the_key_path_on(tmp_path: Path) -> None:
    """matrix and sbom catch the manifest's own error (no ValueError tuple) and keep its
    key path in what they say."""
    bundle = tmp_path / "b"
    bundle.mkdir()
    text = _broken(MANIFEST, lambda d: d["files"][0].pop("sha256"))
    (bundle / MANIFEST_NAME).write_text(text)
    with pytest.raises(InputError, match=r"unreadable manifest: files\[0\]\.sha256: missing"):
        open_bundle(bundle)
    with pytest.raises(InputError, match=r"cannot be read: files\[0\]\.sha256: missing"):
        render(text.encode())
    with pytest.raises(InputError, match="cannot be read: not UTF-8 text"):
        render(b"\xff\xfe")


def test_file_entries_the_writer_would_not_write_are_still_converted() -> None:
    """Well-formed entries are built directly; the others go through the Reader, which
    converts what it can, as it always did."""
    data = copy.deepcopy(MANIFEST)
    data["files"][3].update(size="12", mode=644)
    data["files"][4].update(kind="symlink", target="x")
    m = Manifest.loads(json.dumps(data))
    assert (m.files[3].size, m.files[3].mode) == (12, 0o644)
    assert (m.files[4].kind, m.files[4].target) == ("symlink", "x")
    assert m.files[5] == FileEntry(**{**data["files"][5], "mode": int(data["files"][5]["mode"], 8)})
