"""The runtime profile's contract, on real ELF files: the floors (``[target] glibc``,
``glibcxx``, ``cxxabi``, ``gcc``) and the required hosts (``[target] hosts``).

Two small shared objects are compiled here with this machine's gcc and g++ from
``tests/packages/floors/`` (one needs GLIBC_2.34, one GLIBCXX_3.4.30) and packed into
wheels whose tag claims manylinux_2_17, as a carelessly built wheel would.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from isolate.bundle.elf import file_floors, highest_floors, read_elf
from isolate.hostfacts import gcc_runtime, this_machine
from isolate.interpreters import Discovery
from isolate.matrix.plan import predict
from isolate.model import floors
from isolate.model.manifest import MANIFEST_NAME, Manifest
from isolate.proc import Runner
from isolate.profiles import Catalog
from tests.conftest import MACHINE_GLIBC, Result, build_wheel, bundle_dir, index, invoke

PACKAGES = Path(__file__).parent / "packages" / "floors"
TAG = f"py3-none-manylinux_2_17_{platform.machine()}"
GLIBC_SO = "nglibc/_threads.so"
CXX_SO = "ncxx/_wait.so"

pytestmark = [
    pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("g++") is None,
                       reason="needs gcc and g++"),
    pytest.mark.skipif(this_machine().libc_family != "glibc"
                       or floors.version_key(MACHINE_GLIBC) < (2, 34),
                       reason="needs glibc 2.34 or newer to build a GLIBC_2.34 object"),
]

OLD = """\
name = "old"
python = "{python}"
requirements = ["nglibc"]

[target]
glibc = "2.17"
"""

NAT = """\
name = "nat"
python = "{python}"
requirements = ["ncxx"]

[target]
glibc = "{glibc}"
"""


def compile_shared(out: Path, source: Path, compiler: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(source)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("objects")
    return {"glibc": compile_shared(d / "libthreads.so", PACKAGES / "needs_glibc_2_34.c", "gcc"),
            "cxx": compile_shared(d / "libwait.so", PACKAGES / "needs_glibcxx_3_4_30.cc", "g++")}


@pytest.fixture(scope="module")
def native_wheels(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path,
                  objects: dict[str, Path]) -> Path:
    d = tmp_path_factory.mktemp("native-wheels")
    for w in wheelhouse.iterdir():
        shutil.copy(w, d)
    build_wheel(d, "nglibc", "1.0", tag=TAG, extra={GLIBC_SO: objects["glibc"].read_bytes()})
    build_wheel(d, "ncxx", "1.0", tag=TAG, extra={CXX_SO: objects["cxx"].read_bytes()})
    return d


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, target_python: str, native_wheels: Path) -> Path:
    ws = tmp_path_factory.mktemp("contract-ws")
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "old.toml").write_text(OLD.format(python=target_python))
    write_nat(ws, target_python)
    for name in ("old", "nat"):
        r = invoke(["--root", ws, "lock", name, *index(native_wheels)])
        assert r.code == 0, r.output
    return ws


def write_nat(ws: Path, python: str, extra: str = "") -> None:
    """The "nat" profile; ``extra`` adds [target] keys (none of them stales its lock)."""
    text = NAT.format(python=python, glibc=MACHINE_GLIBC) + extra
    (ws / "profiles" / "runtimes" / "nat.toml").write_text(text)


def bundle(ws: Path, wheels: Path, out: Path, name: str, *args: str) -> Result:
    return invoke(["--root", ws, "bundle", name, "-o", out, "--format", "dir", "-q",
                   "--no-tests-overlay", *args, *index(wheels)])


def runtime_glibc_floor(err: str) -> str:
    """The glibc floor a refused build reports for its runtime."""
    m = re.search(r"glibc: the runtime needs glibc (\d+\.\d+) ", err)
    assert m, err
    return m.group(1)


def published(out: Path) -> list[str]:
    """What a build left in its output directory, its lock file aside."""
    return sorted(p.name for p in out.iterdir() if p.name != ".isolate-build.lock") \
        if out.exists() else []


# -- the ELF facts ----------------------------------------------------------------------


def test_floors_of_real_objects(objects: dict[str, Path]) -> None:
    root = objects["glibc"].parent
    per_file = file_floors([read_elf(p) for p in objects.values()], root)
    by = {(f.file, f.kind): f for f in per_file}
    assert by[("libthreads.so", "glibc")].symbol == "GLIBC_2.34"
    assert by[("libwait.so", "glibcxx")].symbol == "GLIBCXX_3.4.30"
    assert ("libwait.so", "gcc") in by or ("libwait.so", "cxxabi") in by  # unwinder / ABI
    assert ("libthreads.so", "glibcxx") not in by
    top = {f.kind: f for f in highest_floors(per_file)}
    assert top["glibc"].version == "2.34" and top["glibcxx"].file == "libwait.so"


def test_this_machine_gcc_runtime_is_read_from_its_libraries() -> None:
    found = gcc_runtime()
    assert floors.is_version(found["glibcxx"]) and floors.is_version(found["gcc"])
    # g++ here linked the test object against this libstdc++: it defines what that needs
    assert floors.version_key(found["glibcxx"]) >= (3, 4, 30)
    cat = Catalog(root=None, discovery=Discovery(Runner()))
    local = cat.local_hosts()
    if local:
        assert local[0].profile.gcc_runtime == found


def test_gcc_runtime_of_another_root_filesystem(tmp_path: Path) -> None:
    """A RHEL-style layout (lib64) with real libraries, and a root without them."""
    lib64 = tmp_path / "root" / "usr" / "lib64"
    lib64.mkdir(parents=True)
    for soname in ("libstdc++.so.6", "libgcc_s.so.1"):
        real = next(p for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                "/usr/lib64", "/lib64") if (p := Path(d) / soname).is_file())
        shutil.copyfile(real, lib64 / soname)
    assert gcc_runtime(tmp_path / "root") == gcc_runtime()
    (lib64 / "libgcc_s.so.1").write_bytes(b"\x7fELF truncated")
    assert "gcc" not in gcc_runtime(tmp_path / "root")  # unreadable: unknown, not an error
    assert gcc_runtime(tmp_path / "empty") == {}


def test_versions_compare_numerically() -> None:
    assert floors.exceeds("3.4.30", "3.4.25") and not floors.exceeds("3.4.9", "3.4.25")
    assert not floors.exceeds("7.0.0", "7") and floors.exceeds("12.0.0", "7.0.0")
    assert floors.classify("libstdc++.so.6", "GLIBCXX_3.4.30") == ("glibcxx", "3.4.30")
    assert floors.classify("libfoo-1a2b.so", "GLIBCXX_3.4.30") is None  # a private copy
    assert floors.classify("libc.so.6", "GLIBC_PRIVATE") is None
    assert floors.classify("libstdc++.so.6", "CXXABI_TM_1") is None


# -- the floor contract -----------------------------------------------------------------


def test_a_wheel_needing_a_newer_glibc_than_the_target_is_refused_naming_its_file(
        ws: Path, native_wheels: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = bundle(ws, native_wheels, out, "old")
    assert r.code == 2, r.output
    assert "the runtime needs more from the host than its profile allows (glibc" in r.err
    assert "> 2.17); nothing was published" in r.err
    assert '[target] glibc = "2.17"' in r.err
    assert f"wheel nglibc-1.0-{TAG}.whl:" in r.err
    line = next(x for x in r.err.splitlines() if x.strip().endswith(f"{GLIBC_SO} needs GLIBC_2.34"))
    assert "site-packages/" in line
    # the copied local interpreter is named too: its floor is this machine's glibc
    assert "the interpreter (local:" in r.err
    assert "--python source:" in r.err and "raise [target] glibc" in r.err
    assert "Traceback" not in r.err
    assert published(out) == []


def test_a_wheel_needing_a_newer_libstdcxx_than_the_target_is_refused(
        ws: Path, native_wheels: Path, tmp_path: Path, target_python: str) -> None:
    write_nat(ws, target_python, 'glibcxx = "3.4.25"\n')
    out = tmp_path / "out"
    r = bundle(ws, native_wheels, out, "nat")
    assert r.code == 2, r.output
    assert "(libstdc++ 3.4.30 > 3.4.25)" in r.err
    assert f"wheel ncxx-1.0-{TAG}.whl:" in r.err and f"{CXX_SO} needs GLIBCXX_3.4.30" in r.err
    assert "the interpreter" not in r.err  # only the wheel breaks the libstdc++ contract
    assert "raise [target] glibcxx" in r.err
    assert published(out) == []


# -- required hosts ---------------------------------------------------------------------


def test_a_required_host_the_runtime_cannot_run_on_is_refused_then_allowed(
        ws: Path, native_wheels: Path, tmp_path: Path, target_python: str,
        run_isolate: Callable[..., Result]) -> None:
    write_nat(ws, target_python, 'hosts = ["debian-12", "rhel-8", "local-*", "nothing-*"]\n')
    out = tmp_path / "out"
    r = bundle(ws, native_wheels, out, "nat")
    assert r.code == 2, r.output
    assert "warning:" in r.err and "'nothing-*' matches no host profile" in r.err
    assert "predicted not to run on 1 required host (rhel-8); nothing was published" in r.err
    rhel = next(x for x in r.err.splitlines() if x.startswith("  rhel-8: "))
    # The runtime's glibc floor is its interpreter's (pyenv's 3.12 and 3.13 differ here).
    floor = runtime_glibc_floor(r.err)
    assert floors.version_key(floor) > (2, 28) and "rhel-8 has 2.28" in rhel
    assert f"glibc: the runtime needs glibc {floor} (GLIBC_{floor} in " in rhel
    assert "host library: the runtime needs libstdc++ GLIBCXX_3.4.30" in rhel
    assert CXX_SO in rhel
    assert "rhel-8 ships up to GLIBCXX_3.4.25" in rhel
    assert "--allow-incompatible HOST" in r.err
    assert published(out) == []

    r = bundle(ws, native_wheels, out, "nat", "--allow-incompatible", "debian-11")
    assert r.code == 2 and "--allow-incompatible debian-11: not a required host" in r.err

    r = bundle(ws, native_wheels, out, "nat", "--allow-incompatible", "rhel-8")
    assert r.code == 0, r.output
    assert "required host rhel-8 is predicted incompatible, allowed by --allow-incompatible" \
        in r.err
    assert "GCC runtime floors: GLIBCXX_3.4.30" in r.out
    m = Manifest.loads((bundle_dir(out) / MANIFEST_NAME).read_text())
    assert m.contract.required_hosts == ("debian-12", "rhel-8", "local-*", "nothing-*")
    assert "debian-12" in m.contract.resolved_hosts and "rhel-8" in m.contract.resolved_hosts
    (allowed,) = m.contract.allowed_incompatible
    assert allowed.host == "rhel-8" and any("GLIBCXX_3.4.30" in x for x in allowed.reasons)
    top = {f.kind: f for f in m.elf.floors}
    assert top["glibcxx"].symbol == "GLIBCXX_3.4.30" and top["glibcxx"].file.endswith(CXX_SO)
    assert top["glibc"].version == m.elf.glibc_floor
    data = json.loads((bundle_dir(out) / MANIFEST_NAME).read_text())
    assert data["elf"]["floors"]["glibcxx"]["version"] == "3.4.30"
    assert data["contract"]["allowed_incompatible"][0]["host"] == "rhel-8"

    # Prediction checks all three floors, from the manifest and the host profiles.
    cat = Catalog(root=ws, discovery=Discovery(Runner()))
    rhel8 = predict(m, cat.host("rhel-8").profile)
    assert rhel8.verdict == "incompatible"
    assert any(x.startswith("host library: the runtime needs libstdc++ GLIBCXX_3.4.30")
               for x in rhel8.reasons)
    deb12 = predict(m, cat.host("debian-12").profile)
    assert deb12.verdict == "compatible" and "GLIBCXX_3.4.30 >= GLIBCXX_3.4.30" in deb12.reasons

    # verify applies the same rule to the files themselves.
    r = run_isolate("--root", ws, "verify", bundle_dir(out), "--host", "rhel-8")
    assert r.code == 1, r.output
    assert "needs libstdc++ GLIBCXX_3.4.30; host rhel-8 ships up to GLIBCXX_3.4.25" in r.output
    r = run_isolate("--root", ws, "verify", bundle_dir(out), "--host", "debian-12")
    assert "GLIBCXX" not in r.output, r.output

    # The matrix marks required cells; the report fails on the required host only.
    results = tmp_path / "results.json"
    r = run_isolate("--root", ws, "matrix", bundle_dir(out), "--hosts",
                    "rhel-8,ubuntu-24.04,alpine-3.20", "-o", results)
    assert r.code == 1, r.output
    data = json.loads(results.read_text())
    assert data["required_hosts"] == ["debian-12", "rhel-8", "local-*", "nothing-*"]
    assert {c["host"]: c["required"] for c in data["cells"]} == {
        "rhel-8": True, "ubuntu-24.04": False, "alpine-3.20": False}
    r = run_isolate("report", results)
    assert r.code == 1, r.output
    assert "FAIL: 1 cell needs attention; nothing was observed (0 of 3 cells ran)" in r.out
    assert "rhel-8: required host predicted incompatible, not observed" in r.out
    assert "alpine-3.20: " not in r.out


def test_an_unknown_required_host_is_refused_with_the_closest_ids(
        ws: Path, native_wheels: Path, tmp_path: Path, target_python: str,
        run_isolate: Callable[..., Result]) -> None:
    write_nat(ws, target_python, 'hosts = ["debian-12", "rhel8"]\n')
    r = bundle(ws, native_wheels, tmp_path / "out", "nat")
    assert r.code == 2, r.output
    assert "[target] hosts names unknown host rhel8" in r.err
    assert "did you mean 'rhel-8'?" in r.err
    assert published(tmp_path / "out") == []
    r = run_isolate("--root", ws, "profiles", "show", "nat")
    assert r.code == 2 and "unknown host rhel8" in r.err


def test_profiles_show_marks_required_hosts(ws: Path, target_python: str,
                                            run_isolate: Callable[..., Result]) -> None:
    write_nat(ws, target_python, 'hosts = ["debian-1?", "rhel-9", "solaris-*"]\n')
    r = run_isolate("--root", ws, "profiles", "show", "nat")
    assert r.code == 0, r.output
    assert "'solaris-*' matches no host profile" in r.err
    data = json.loads(r.out)
    marks = {h["id"]: h["required"] for h in data["hosts"]}
    assert marks["debian-11"] and marks["debian-12"] and marks["debian-13"] and marks["rhel-9"]
    assert not marks["rhel-8"] and not marks["alpine-3.20"]
    assert data["target"]["hosts"] == ["debian-1?", "rhel-9", "solaris-*"]
    listing = run_isolate("--root", ws, "profiles")
    assert "required hosts: debian-1?, rhel-9, solaris-*" in listing.out


NOVA_HOSTS = ("debian-11", "debian-12", "debian-13", "ubuntu-20.04", "ubuntu-22.04",
              "ubuntu-24.04", "rhel-8", "rhel-9", "local-*")


def test_static_only_sharded_matrix_of_a_runtime_at_this_machines_floor_fails_the_report(
        ws: Path, native_wheels: Path, tmp_path: Path, target_python: str,
        run_isolate: Callable[..., Result]) -> None:
    """Issue 14's case: a runtime at the build machine's floor, Nova's required hosts, a
    sharded matrix of static hosts only: nothing observed, and the report names the
    required hosts the runtime cannot run on."""
    write_nat(ws, target_python, f"hosts = {json.dumps(list(NOVA_HOSTS))}\n")
    out = tmp_path / "out"
    r = bundle(ws, native_wheels, out, "nat")
    assert r.code == 2, r.output
    refused = {x.split(":")[0].strip() for x in r.err.splitlines() if x.startswith("  ")}
    # GLIBCXX_3.4.30 rules these out whatever the interpreter; Ubuntu 22.04 (glibc 2.35)
    # is out only when the interpreter's floor is above it.
    assert {"rhel-8", "rhel-9", "ubuntu-20.04", "debian-11"} <= refused
    floor = runtime_glibc_floor(r.err)
    assert ("ubuntu-22.04" in refused) == (floors.version_key(floor) > (2, 35)), r.err
    allow = [a for h in sorted(refused) for a in ("--allow-incompatible", h)]
    r = bundle(ws, native_wheels, out, "nat", *allow)
    assert r.code == 0, r.output
    hosts = "ubuntu-20.04,rhel-8,rhel-9,alpine-3.20"
    shards = [tmp_path / f"shard-{i}.json" for i in (1, 2)]
    for i, shard in enumerate(shards, 1):
        r = run_isolate("--root", ws, "matrix", bundle_dir(out), "--hosts", hosts,
                        "--shard", f"{i}/2", "-o", shard)
        assert r.code == 1, r.output
    r = run_isolate("report", *shards, "--html", tmp_path / "report.html")
    assert r.code == 1, r.output
    head = next(x for x in r.out.splitlines() if x.startswith(("OK", "FAIL")))
    assert head.startswith("FAIL: 3 cells need attention; nothing was observed (0 of 4 cells")
    failing = sorted(x.split(":")[0].strip() for x in r.out.splitlines()
                     if "required host predicted incompatible" in x)
    assert failing == ["rhel-8", "rhel-9", "ubuntu-20.04"]
    assert "every observed cell passed" not in r.output
    page = (tmp_path / "report.html").read_text()
    assert page.count('<span class="badge required">required</span>') == 3
