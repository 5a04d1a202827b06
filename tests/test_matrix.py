"""isolate matrix on the small runtime: local hosts in a hostile environment, a static
host, prediction, per-test outcomes, fingerprints, equivalence, shards, bad input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from isolate.interpreters import Discovery
from isolate.matrix.plan import predict
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.model.profiles import HostProfile, Libc, Provision
from isolate.model.results import Results
from isolate.proc import Runner
from tests.conftest import Result, bundle_dir


def local_ids(n: int = 2) -> list[str]:
    found = [f"local-{m[0]}.{m[1]}" for m in Discovery(Runner()).by_minor()]
    if len(found) < n:
        pytest.skip(f"needs {n} local interpreters, found {found}")
    # the oldest and the newest: the widest spread of platform Pythons
    return [found[0], found[-1]][:n]


def archive(out: Path) -> Path:
    (a,) = [p for p in out.glob("*.tar.zst") if ".tests." not in p.name]
    return a


def test_local_hosts_pass_and_are_equivalent_static_is_predicted_only(
        built: Path, tmp_path: Path, run_isolate: Callable[..., Result]) -> None:
    hosts = [*local_ids(), "rhel-8", "alpine-3.20"]
    res = tmp_path / "results.json"
    r = run_isolate("matrix", archive(built), "--hosts", ",".join(hosts), "-o", res)
    assert r.code == 0, r.output
    results = Results.loads(res.read_text())
    by = {c.host: c for c in results.cells}
    assert list(by) == hosts
    for h in hosts[:2]:
        c = by[h]
        assert c.executor == "local"
        assert c.observed.status == "passed", c.observed
        assert c.observed.counts == {"passed": 5, "failed": 0, "error": 0, "skipped": 1}
        assert c.equivalent is True
        assert c.observed.tests["tool.tests.ToolTests.test_alpha_version"] == "passed"
        fp = c.observed.runtime
        assert fp["isolated"] is True and fp["prefix"] == "<bundle>/python"
        assert all(p.startswith(("<bundle>", "<overlay>")) for p in fp["sys_path"])
        assert "alpha==1.1" in fp["distributions"]
        host = c.observed.host
        assert host["platform_python"]["version"].startswith(c.host.split("-")[1])
        assert host["env"]["PYTHONPATH"] and host["env"]["LD_LIBRARY_PATH"]
    assert results.baseline == hosts[0] and by[hosts[0]].baseline
    assert by["rhel-8"].observed.status == "not-run" and by["rhel-8"].equivalent is None
    assert "predicted only" in (by["rhel-8"].observed.reason or "")
    alpine = by["alpine-3.20"]
    assert alpine.predicted.verdict == "incompatible"
    assert any("musl" in r for r in alpine.predicted.reasons)


def test_a_broken_bundle_is_observed_failing_and_the_report_names_the_tests(
        built: Path, tmp_path: Path, run_isolate: Callable[..., Result]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir(built), broken / bundle_dir(built).name, symlinks=True)
    b = broken / bundle_dir(built).name
    overlay = built / f"{b.name}.tests"
    shutil.copytree(overlay, broken / overlay.name, symlinks=True)
    # a vendored library is broken: the tests that need it fail in the runtime. (A
    # library *removed* falls back to the host's copy where the host has one, as this
    # machine does; the Nova end-to-end test removes one in a root filesystem without.)
    m = Manifest.loads((b / MANIFEST_NAME).read_text())
    (sqlite,) = [v.path for v in m.elf.vendored if v.soname.startswith("libsqlite3")]
    (b / sqlite).write_bytes(b"")
    (host,) = local_ids(1)
    res = tmp_path / "results.json"
    r = run_isolate("matrix", b, "--hosts", host, "-o", res)
    assert r.code == 1, r.output
    cell = Results.loads(res.read_text()).cells[0]
    assert cell.observed.status == "failed"
    failing = [t for t, o in cell.observed.tests.items() if o in ("failed", "error")]
    assert failing == ["tool.tests.ToolTests.test_sqlite"], cell.observed.tests
    html = tmp_path / "r.html"
    md = tmp_path / "r.md"
    r = run_isolate("report", res, "--html", html, "--markdown", md)
    assert r.code == 1
    assert "tool.tests.ToolTests.test_sqlite" in md.read_text()
    assert "tool.tests.ToolTests.test_sqlite" in html.read_text()


def test_shards_split_the_cells_and_merge(built: Path, tmp_path: Path,
                                         run_isolate: Callable[..., Result]) -> None:
    hosts = [*local_ids(), "rhel-9", "ubuntu-24.04"]
    parts = []
    for i in (1, 2):
        out = tmp_path / f"shard{i}.json"
        r = run_isolate("matrix", archive(built), "--hosts", ",".join(hosts),
                        "--shard", f"{i}/2", "-o", out)
        assert r.code == 0, r.output
        parts.append(out)
    assert [c.host for c in Results.loads(parts[0].read_text()).cells] == hosts[0::2]
    merged = tmp_path / "merged.json"
    r = run_isolate("report", "merge", *parts, "-o", merged)
    assert r.code == 0, r.output
    results = Results.loads(merged.read_text())
    assert sorted(c.host for c in results.cells) == sorted(hosts)
    observed = [c for c in results.cells if c.executor == "local"]
    assert all(c.equivalent for c in observed)


def test_prediction_from_glibc_floor() -> None:
    m = Manifest.loads(json.dumps({
        "schema": "isolate.manifest/1", "name": "x", "runtime": "x", "version": "1",
        "python_tag": "cp312", "platform": "manylinux_2_36_x86_64", "arch": "x86_64",
        "tool_version": "0", "profile_sha256": "", "lock_sha256": "",
        "test_lock_sha256": None, "build_marker": ".isolate-build-",
        "interpreter": {"version": "3.12.1", "source": "", "executable": "", "stdlib": "",
                        "site_packages": ""},
        "distributions": [], "scripts": [], "files": [],
        "elf": {"glibc_floor": "2.36", "glibc_floor_file": "lib/libcrypt.so.1",
                "glibc_floor_symbol": "GLIBC_2.36"}}))

    def host(version: str, family: str = "glibc") -> HostProfile:
        return HostProfile(id="h", name="h", distro="d", release="1", arch="x86_64",
                           libc=Libc(family=family, version=version), python=None,
                           provision=Provision(method="static"))

    old = predict(m, host("2.31"))
    assert old.verdict == "incompatible"
    assert "glibc 2.36" in old.reasons[0] and "lib/libcrypt.so.1" in old.reasons[0]
    assert predict(m, host("2.36")).verdict == "compatible"
    assert predict(m, host("2.41")).verdict == "compatible"
    assert predict(m, host("1.2.5", "musl")).verdict == "incompatible"


def test_bad_input(built: Path, tmp_path: Path, run_isolate: Callable[..., Result]) -> None:
    r = run_isolate("matrix", archive(built), "--hosts", "debain-12", "-o", tmp_path / "r.json")
    assert r.code == 2 and "unknown host profile 'debain-12'" in r.err
    assert "did you mean 'debian-12'" in r.err
    r = run_isolate("matrix", tmp_path / "nothing.tar.zst", "--hosts", "rhel-8", "-o",
                    tmp_path / "r.json")
    assert r.code == 2 and "does not exist" in r.err
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"not an archive at all")
    r = run_isolate("matrix", junk, "--hosts", "rhel-8", "-o", tmp_path / "r.json")
    assert r.code == 2, r.output
    r = run_isolate("matrix", archive(built), "--hosts", "rhel-8", "--shard", "3/2", "-o",
                    tmp_path / "r.json")
    assert r.code == 2 and "--shard" in r.err
    assert not (tmp_path / "r.json").exists()
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "isolate.results/0", "cells": []}))
    r = run_isolate("report", old)
    assert r.code == 2 and "isolate.results/2" in r.err
    # a bundle directory without a manifest
    (tmp_path / "empty").mkdir()
    r = run_isolate("matrix", tmp_path / "empty", "--hosts", "rhel-8", "-o", tmp_path / "r.json")
    assert r.code == 2 and MANIFEST_NAME in r.err
