"""isolate matrix on the small runtime: local hosts in a hostile environment, a static
host, prediction, per-test outcomes, fingerprints, equivalence, shards, bad input; one
shared copy of the bundle, cells by cost, and `isolate provision`."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from isolate.interpreters import Discovery
from isolate.matrix import costs
from isolate.matrix.execute import open_bundle
from isolate.matrix.plan import PlannedCell, predict
from isolate.matrix.run import run_matrix
from isolate.matrix.shared import SPACE_DIR, make_shared_copy
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.model.profiles import HostProfile, Libc, Provision
from isolate.model.results import Prediction, Results
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


# -- one copy of the bundle, cells by cost, provisioning ahead ------------------------------


class RecordingRunner(Runner):
    """A real runner that notes which cell's probe each command started."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []

    def run(self, argv, **kw):  # type: ignore[no-untyped-def]
        probes = [Path(str(a)) for a in argv if str(a).endswith("probe.py")]
        if probes:
            self.cells.append(probes[0].parent.name)
        return super().run(argv, **kw)


def _local_hosts(ids: list[str]) -> list[HostProfile]:
    from isolate.profiles import Catalog

    catalog = Catalog(root=None, discovery=Discovery(Runner()))
    return [catalog.host(i).profile for i in ids]


def test_the_bundle_is_unpacked_once_and_local_cells_run_private_copies(
        built: Path, tmp_path: Path) -> None:
    hosts = _local_hosts(local_ids())
    work = tmp_path / "work"
    work.mkdir()
    results = run_matrix(open_bundle(archive(built)), hosts, runner=Runner(), work_dir=work,
                         keep=True, cost_book=tmp_path / "costs.json")
    assert [c.observed.status for c in results.cells] == ["passed", "passed"]
    assert all(c.equivalent for c in results.cells)
    (matrix_dir,) = work.iterdir()
    name = bundle_dir(built).name
    shared = matrix_dir / "shared" / SPACE_DIR / name / MANIFEST_NAME
    copies = sorted(p for p in matrix_dir.rglob("*") if p.name == MANIFEST_NAME)
    # unpacked once; each local cell ran a copy of that layout of its own (its test runner
    # may write into it: pytest's byte code of rewritten test modules)
    assert copies == sorted([shared, *(matrix_dir / h.id / "copy" / SPACE_DIR / name /
                                       MANIFEST_NAME for h in hosts)])
    for h in hosts:
        assert (matrix_dir / h.id / "probe.py").is_file()
    # the overlay is found relative to site-packages: the same line serves every executor
    # and every copy
    m = Manifest.loads(shared.read_text())
    for root in (matrix_dir / "shared", *(matrix_dir / h.id / "copy" for h in hosts)):
        site = root / SPACE_DIR / name / m.interpreter.site_packages
        pth = (site / "isolate-test-overlay.pth").read_text().strip()
        assert not pth.startswith("/")
        assert (site / pth).resolve() == (root / "overlay" / "site-packages").resolve()


def _copy_with_pth(built: Path, tmp_path: Path, pth: str) -> Path:
    """A copy of the built bundle and its test overlay; the overlay gets a .pth file
    whose line ``pth`` runs in every process of a cell."""
    b = tmp_path / "b" / bundle_dir(built).name
    shutil.copytree(bundle_dir(built), b, symlinks=True)
    overlay = shutil.copytree(built / f"{b.name}.tests", b.parent / f"{b.name}.tests",
                              symlinks=True)
    (overlay / "site-packages" / "zz-writer.pth").write_text(pth)
    return b


def _run_local(b: Path, tmp_path: Path) -> tuple[list[HostProfile], Path, Results]:
    """The bundle's local cells, kept in ``tmp_path/work``: (hosts, the matrix's work
    directory, results)."""
    hosts = _local_hosts(local_ids())
    work = tmp_path / "work"
    work.mkdir()
    results = run_matrix(open_bundle(b), hosts, runner=Runner(), work_dir=work, keep=True,
                         cost_book=tmp_path / "costs.json")
    (matrix_dir,) = work.iterdir()
    return hosts, matrix_dir, results


def test_what_a_local_cell_writes_stays_in_its_own_copy(built: Path, tmp_path: Path) -> None:
    # the .pth line writes into the runtime's prefix
    b = _copy_with_pth(built, tmp_path, "import os, sys; open(os.path.join(sys.prefix, "
                       "'written-by-a-cell'), 'w').close()\n")
    hosts, matrix_dir, results = _run_local(b, tmp_path)
    assert [c.observed.status for c in results.cells] == ["passed", "passed"]
    for h in hosts:
        assert (matrix_dir / h.id / "copy" / SPACE_DIR / b.name / "python" /
                "written-by-a-cell").exists()
    assert not (matrix_dir / "shared" / SPACE_DIR / b.name / "python" /
                "written-by-a-cell").exists()
    assert not (b / "python" / "written-by-a-cell").exists()  # the input was never touched


def test_a_local_cell_that_writes_into_a_linked_file_in_place_is_an_error(
        built: Path, tmp_path: Path) -> None:
    """A private copy's files are hard links to the shared copy's: a write into one in
    place (not a new file) changes the shared copy, and the cells are not trusted."""
    b = _copy_with_pth(built, tmp_path,
                       "import os; f = open(os.__file__, 'a'); f.write('\\n'); f.close()\n")
    (os_py,) = (b / "python" / "lib").glob("python3.*/os.py")
    original = os_py.read_bytes()
    _, matrix_dir, results = _run_local(b, tmp_path)
    assert [c.observed.status for c in results.cells] == ["error", "error"]
    rel = os_py.relative_to(b.parent)
    for c in results.cells:
        reason = c.observed.reason or ""
        assert "wrote into the bundle copy that every cell runs" in reason, reason
        assert f"{SPACE_DIR}/{rel}" in reason, reason
    shared_os_py = matrix_dir / "shared" / SPACE_DIR / rel
    assert shared_os_py.read_bytes().startswith(original + b"\n")  # written through a link
    assert os_py.read_bytes() == original  # the input was never touched


def _tree(top: Path) -> dict[str, os.stat_result]:
    return {str(p.relative_to(top)): p.lstat() for p in sorted(top.rglob("*"))}


def test_a_private_copy_links_the_shared_files_and_has_its_own_directories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "in" / "rt-1.0"
    site = bundle / "python" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "mod.py").write_text("x = 1\n")
    (bundle / "bin").mkdir()
    (bundle / "bin" / "tool").write_text("#!/bin/sh\n")
    (bundle / "bin" / "tool").chmod(0o755)
    (bundle / "bin" / "python3").symlink_to("../python/lib/site-packages/mod.py")
    overlay = tmp_path / "in" / "rt-1.0.tests"
    (overlay / "site-packages").mkdir(parents=True)
    (overlay / "site-packages" / "test_mod.py").write_text("def test(): pass\n")
    shared = make_shared_copy(bundle, overlay, site_packages="python/lib/site-packages",
                              work=tmp_path / "work")
    top, copy_overlay = shared.private_copy(tmp_path / "cell" / "copy")
    assert top == tmp_path / "cell" / "copy" / SPACE_DIR / "rt-1.0"
    assert copy_overlay == tmp_path / "cell" / "copy" / "overlay"
    mine, theirs = _tree(tmp_path / "cell" / "copy"), _tree(shared.root)
    assert mine.keys() == theirs.keys()
    kinds = {stat.S_IFMT(st.st_mode) for st in theirs.values()}
    assert kinds == {stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK}
    for rel, st in theirs.items():
        if stat.S_ISREG(st.st_mode):  # the same file, under two names
            assert (mine[rel].st_ino, mine[rel].st_dev) == (st.st_ino, st.st_dev), rel
        else:  # a directory or symlink of its own
            assert mine[rel].st_ino != st.st_ino, rel
            assert stat.S_IFMT(mine[rel].st_mode) == stat.S_IFMT(st.st_mode), rel
    assert (top / "bin" / "python3").readlink() == Path("../python/lib/site-packages/mod.py")
    assert shared.changes() == []
    # what a cell creates, byte code by rename included, stays in its copy
    (top / "python" / "lib" / "site-packages" / "__pycache__").mkdir()
    (top / "python" / "lib" / "site-packages" / "new.py").write_text("")
    tmp = top / "bin" / "tool.tmp"
    tmp.write_text("#!/bin/sh\nexit 1\n")
    tmp.replace(top / "bin" / "tool")
    assert shared.changes() == []
    assert (shared.top / "bin" / "tool").read_text() == "#!/bin/sh\n"
    # a write in place, through the link, is a write into the shared copy: it is seen
    with open(top / "python" / "lib" / "site-packages" / "mod.py", "r+") as f:
        f.write("y")
    with open(copy_overlay / "site-packages" / "test_mod.py", "a") as f:
        f.write("\n")
    assert shared.changes() == [f"{SPACE_DIR}/rt-1.0/python/lib/site-packages/mod.py",
                                "overlay/site-packages/test_mod.py"]

    # where the file system cannot link, the files are copied, one by one
    def cannot_link(src: str, dst: str, **kw: object) -> None:
        if src.endswith("mod.py"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst, **kw)

    real_link = os.link
    monkeypatch.setattr(os, "link", cannot_link)
    top2, _ = shared.private_copy(tmp_path / "cell2" / "copy")
    copied, linked = (top2 / "python/lib/site-packages/mod.py").stat(), (top2 / "bin/tool").stat()
    assert copied.st_ino != (shared.top / "python/lib/site-packages/mod.py").stat().st_ino
    assert (top2 / "python/lib/site-packages/mod.py").read_text() == "y = 1\n"
    assert linked.st_ino == (shared.top / "bin/tool").stat().st_ino
    # any other failure is not hidden by a copy
    monkeypatch.setattr(os, "link", lambda *a, **kw: (_ for _ in ()).throw(
        OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):
        shared.private_copy(tmp_path / "cell3" / "copy")


def test_the_costliest_cell_starts_first_and_costs_are_recorded(built: Path,
                                                                tmp_path: Path) -> None:
    ids = local_ids()
    hosts = _local_hosts([*ids, "rhel-8"])
    book = tmp_path / "costs.json"
    # the plan's order is ids[0], ids[1]; the book says ids[1] costs more
    book.write_text(json.dumps({"schema": costs.SCHEMA,
                                "cells": {"app": {ids[0]: 1.0, ids[1]: 500.0}}}))
    runner = RecordingRunner()
    results = run_matrix(open_bundle(archive(built)), hosts, runner=runner, jobs=1,
                         cost_book=book)
    assert runner.cells == [ids[1], ids[0]]
    assert [c.host for c in results.cells] == [*ids, "rhel-8"]  # results keep the plan's order
    recorded = costs.load(book).seconds["app"]
    assert set(recorded) == set(ids)  # measured now: the old 500 s is gone; no static cell
    assert all(0 < s < 500 for s in recorded.values())
    # a second run starts whichever the book now says is costlier
    runner = RecordingRunner()
    run_matrix(open_bundle(archive(built)), hosts, runner=runner, jobs=1, cost_book=book)
    assert runner.cells == sorted(ids, key=lambda i: (-recorded[i], ids.index(i)))


def _planned(host_id: str, executor: str) -> PlannedCell:
    host = HostProfile(id=host_id, name=host_id, distro="d", release="1", arch="x86_64",
                       libc=Libc(family="glibc", version="2.36"), python=None,
                       provision=Provision(method="static"))
    return PlannedCell(host=host, executor=executor,
                       prediction=Prediction(verdict="compatible"))


def test_longest_first_orders_by_cost_with_defaults() -> None:
    cells = [_planned("s", "static"), _planned("a", "local"), _planned("b", "rootfs"),
             _planned("new", "rootfs"), _planned("c", "local")]
    book = costs.CostBook(seconds={"app": {"a": 10.0, "b": 90.0, "c": 30.0},
                                   "other": {"new": 1000.0}})
    # a cell never measured costs as much as the costliest known one of the runtime, so it
    # starts early; ties keep the plan's order; a static cell costs nothing
    order = [c.host.id for c in costs.longest_first(cells, book, "app")]
    assert order == ["b", "new", "c", "a", "s"]
    # nothing known of the runtime: the plan's order, static cells last
    order = [c.host.id for c in costs.longest_first(cells, book, "unknown")]
    assert order == ["a", "b", "new", "c", "s"]


@pytest.mark.parametrize("text", ["", "{", '{"schema": "isolate.matrix-costs/0", "cells": {}}',
                                  '{"schema": "isolate.matrix-costs/1", "cells": {"app": 3}}'])
def test_an_unreadable_cost_book_is_empty_and_recording_replaces_it(tmp_path: Path,
                                                                     text: str) -> None:
    book = tmp_path / "costs.json"
    book.write_text(text)
    assert costs.load(book).seconds == {}
    costs.record(book, "app", {"local-3.11": 12.5})
    assert costs.load(book).seconds == {"app": {"local-3.11": 12.5}}


def test_provision_skips_hosts_without_a_root_filesystem(
        run_isolate: Callable[..., Result]) -> None:
    (host,) = local_ids(1)
    r = run_isolate("provision", "--hosts", f"rhel-8,{host}")
    assert r.code == 0, r.output
    assert "no host of these needs a root filesystem" in r.out


def test_provision_names_a_root_filesystem_it_cannot_make(
        run_isolate: Callable[..., Result], workspace: Path) -> None:
    # nothing listens on this port: debootstrap fails at once (or the tools are missing)
    (workspace / "profiles" / "hosts" / "nowhere.toml").write_text(
        'id = "nowhere"\nname = "Debian from nowhere"\ndistro = "debian"\nrelease = "12"\n'
        'codename = "bookworm"\narch = "x86_64"\npython = "none"\n'
        '[libc]\nfamily = "glibc"\nversion = "2.36"\n'
        '[provision]\nmethod = "debootstrap"\nsuite = "bookworm"\n'
        'mirror = "http://127.0.0.1:9/debian"\n')
    r = run_isolate("--root", workspace, "provision", "--hosts", "nowhere,rhel-8")
    assert r.code == 3, r.output
    assert "error: nowhere: cannot provision Debian bookworm" in r.err
    assert "hint:" in r.err
