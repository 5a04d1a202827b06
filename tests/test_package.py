"""isolate bundle --format deb,rpm on the small test runtime: metadata, reproducibility,
lintian, the same files in both, refusals before building, and an install into a
Debian 12 root filesystem."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from isolate.errors import InputError
from isolate.model.fields import Fields
from isolate.model.profiles import PackageSpec, RuntimeProfile
from isolate.package.payload import PackageInfo
from tests.conftest import REPO, bundle_dir, index, invoke
from tests.package_helpers import (
    deb_files,
    deb_of,
    debian_12_copy,
    debian_only,
    lintian_errors,
    rpm_files,
    rpm_of,
    sh,
)

# Packages and diffs need real bundles, .deb and .rpm files (minutes on 2 cores): run
# once, in the e2e session, not on every controller Python.
pytestmark = pytest.mark.slow


def test_names_and_metadata(packaged: Path) -> None:
    deb, rpm = deb_of(packaged), rpm_of(packaged)
    assert deb.name == "app_1.1-1_amd64.deb"
    assert rpm.name == "app-1.1-1.x86_64.rpm"
    fields = sh(["dpkg-deb", "--field", deb]).stdout
    floor = sh(["dpkg-deb", "--field", deb, "Depends"]).stdout.strip()
    assert floor.startswith("libc6 (>= 2."), fields
    assert "Maintainer: isolate developers <isolate@example.org>" in fields
    assert sh(["dpkg-deb", "--ctrl-tarfile", deb]).returncode == 0
    control = sh(["dpkg-deb", "-I", deb]).stdout
    for script in ("preinst", "postinst", "prerm", "postrm"):
        assert script not in control  # no maintainer scripts
    requires = sh(["rpm", "-qp", "--requires", rpm]).stdout.splitlines()
    assert any(r.startswith("glibc >= 2.") for r in requires), requires
    assert not any(".so" in r for r in requires), requires  # no automatic dependencies
    assert sh(["rpm", "-qp", "--scripts", rpm]).stdout.strip() == ""


def test_rpm_lists_the_same_files_as_the_deb(packaged: Path) -> None:
    debs, rpms = deb_files(deb_of(packaged)), rpm_files(rpm_of(packaged))
    b = bundle_dir(packaged)
    shipped = {f"/opt/app/{p.relative_to(b).as_posix()}" for p in b.rglob("*")}
    assert shipped <= rpms
    assert debs - debian_only(debs) == rpms
    assert "/usr/bin/tool" in rpms and "/opt/app" in rpms


@pytest.mark.slow
def test_packages_are_byte_reproducible(packaged: Path, pkg_ws: Path, app_wheels: Path,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twice, and with another number of compressor threads: the same bytes."""
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "cpu_count", lambda: cores + 3)
    again = tmp_path / "again"
    r = invoke(["--root", pkg_ws, "bundle", "app", "-o", again, "--format", "deb,rpm", "-q",
                "--no-tests-overlay", *index(app_wheels)])
    assert r.code == 0, r.output
    assert deb_of(again).read_bytes() == deb_of(packaged).read_bytes()
    assert rpm_of(again).read_bytes() == rpm_of(packaged).read_bytes()
    assert not [p for p in again.iterdir() if p.name.startswith(".") and p.suffix != ".lock"]


def test_lintian_finds_no_errors(packaged: Path) -> None:
    assert lintian_errors(deb_of(packaged)) is None


def test_a_profile_without_package_keys_is_refused_before_building(
        app_ws: Path, tmp_path: Path) -> None:
    r = invoke(["--root", app_ws, "bundle", "app", "-o", tmp_path / "out", "--format",
                "dir,deb,rpm", "-q"])
    assert r.code == 2
    assert "package.maintainer: missing" in r.err and "package.license: missing" in r.err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_an_invalid_package_name_is_refused_with_the_rule(pkg_ws: Path, tmp_path: Path,
                                                          target_python: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(pkg_ws, ws)
    profile = ws / "profiles" / "runtimes" / "app.toml"
    profile.write_text(profile.read_text().replace('[package]\n', '[package]\nname = "My_App"\n'))
    r = invoke(["--root", ws, "bundle", "app", "-o", tmp_path / "out", "--format", "deb"])
    assert r.code == 2
    assert "'My_App' is not a valid Debian package name" in r.err
    assert "Debian policy 5.6.1" in r.err
    assert not (tmp_path / "out").exists()
    # RPM's rule allows upper case and '_': the same name passes for an .rpm
    from isolate.package.payload import check_request

    problems: list = []
    import tomllib

    profile = RuntimeProfile.from_dict(tomllib.loads(profile.read_text()), problems=problems)
    assert profile is not None, problems
    check_request(profile, ("dir", "rpm"), prefix=None, where="app.toml")
    with pytest.raises(InputError) as refused:
        check_request(profile, ("rpm", "deb"), prefix=None, where="app.toml")
    assert "Debian policy 5.6.1" in str(refused.value.details)


def test_package_table_is_validated_with_the_profile() -> None:
    from isolate.model.fields import Problem

    problems: list[Problem] = []
    spec = PackageSpec.from_fields(Fields(
        {"maintainer": "nobody", "prefix": "opt/x", "links": ["a/b"], "colour": "red",
         "debian": {"libraries": {"libvirt.so.0": 3}}}, "package", problems))
    keys = {p.key for p in problems}
    assert {"package.maintainer", "package.prefix", "package.links[0]", "package.colour",
            'package.debian.libraries."libvirt.so.0"'} <= keys, problems
    assert spec.links == ("a/b",)


def test_nova_profile_has_a_valid_package_table() -> None:
    import tomllib

    data = tomllib.loads((REPO / "profiles" / "runtimes" / "nova.toml").read_text())
    problems: list = []
    nova = RuntimeProfile.from_dict(data, problems=problems)
    assert nova is not None, problems
    for fmt in ("deb", "rpm"):
        assert nova.package.missing_for(fmt, description=nova.description,
                                        host_libraries=nova.host_libraries) == []
    assert nova.package.links == ("nova-manage",)
    assert nova.package.debian_libraries == dict.fromkeys(
        ("libvirt.so.0", "libvirt-qemu.so.0", "libvirt-lxc.so.0"), "libvirt0")


# -- installed into a Debian 12 root filesystem ------------------------------------------------


@pytest.mark.slow
def test_deb_installs_runs_and_removes_cleanly_in_debian_12(packaged: Path,
                                                             tmp_path: Path) -> None:
    with debian_12_copy(tmp_path, packaged) as inside:
        r = inside("dpkg", "-i", f"/opt/isolate/pkgs/{deb_of(packaged).name}")
        assert r.returncode == 0, r.stdout + r.stderr
        r = inside("/opt/app/bin/tool")
        assert r.returncode == 0 and r.stdout.startswith("tool 1.1 /opt/app/python"), \
            r.stdout + r.stderr
        r = inside("tool")  # the link in /usr/bin
        assert r.returncode == 0 and r.stdout.startswith("tool 1.1 "), r.stdout + r.stderr
        r = inside("dpkg", "-r", "app")
        assert r.returncode == 0, r.stdout + r.stderr


def test_rpm_installs_into_a_scratch_root(packaged: Path, tmp_path: Path) -> None:
    """``rpm -i --root`` with this machine's rpm (Debian's): the scratch root has no
    glibc package in its rpm database, so dependencies are not checked (--nodeps)."""
    root = tmp_path / "root"
    root.mkdir()
    r = sh(["rpm", "--root", root, "--initdb"])
    if r.returncode != 0:
        pytest.skip(f"this machine does not allow `rpm --initdb --root`: {r.stderr.strip()}")
    r = sh(["rpm", "-i", "--root", root, "--nodeps", rpm_of(packaged)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / "opt/app/bin/tool").is_file()
    assert (root / "usr/bin/tool").is_symlink()
    r = sh(["rpm", "-e", "--root", root, "--nodeps", "app"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (root / "opt/app").exists()


# -- fast: metadata and interruption, without building a runtime ------------------------------


def _info(**changes: object) -> PackageInfo:
    from isolate.package.payload import HostDependency

    base = dict(
        name="nova", version="34.0.0~rc1", release="1", arch="x86_64", prefix="/opt/nova",
        summary="Nova", description="A runtime.", maintainer="A B <a@b.org>",
        license="Apache-2.0", homepage=None, section="misc", links=("nova-manage",),
        glibc_floor="2.28",
        host_dependencies=(HostDependency(soname="libvirt.so.0", required=False,
                                          debian="libvirt0", rpm="libvirt-libs"),
                           HostDependency(soname="libfoo.so.1", required=True,
                                          debian="libfoo1", rpm="foo-libs")),
        debian_depends=(), rpm_requires=(), mtime=315532800, manifest_name="nova-34",
        tool_version="0.1.0", lock_sha256="0" * 64)
    base.update(changes)
    return PackageInfo(**base)  # type: ignore[arg-type]


def test_dependencies_come_from_the_floors_and_host_libraries(tmp_path: Path) -> None:
    from isolate.package.deb import control
    from isolate.package.rpm import spec

    c = control(_info(), 100)
    assert "Depends: libc6 (>= 2.28), libfoo1\n" in c
    assert "Recommends: libvirt0\n" in c
    assert "Version: 34.0.0~rc1-1\n" in c and "Architecture: amd64\n" in c
    s = spec(_info(), tmp_path)
    assert "Requires: glibc >= 2.28\nRequires: foo-libs\nRecommends: libvirt-libs" in s
    assert "AutoReqProv: no" in s and '"/usr/bin/nova-manage"' in s


def test_a_package_providing_several_host_libraries_is_named_once(tmp_path: Path) -> None:
    from isolate.package.deb import control
    from isolate.package.payload import HostDependency
    from isolate.package.rpm import spec

    deps = tuple(HostDependency(soname=so, required=False, debian="libvirt0",
                                rpm="libvirt-libs")
                 for so in ("libvirt.so.0", "libvirt-qemu.so.0", "libvirt-lxc.so.0"))
    assert "Recommends: libvirt0\n" in control(_info(host_dependencies=deps), 100)
    assert spec(_info(host_dependencies=deps), tmp_path).count("Recommends:") == 1


def test_pep440_versions_become_package_versions() -> None:
    from isolate.package.names import name_problem, upstream_version

    assert upstream_version("1.0rc1") == "1.0~rc1"
    assert upstream_version("2.0.post1") == "2.0+post1"
    assert upstream_version("1!3.1") == "1:3.1"
    assert upstream_version("1.0.dev2") == "1.0~dev2"
    assert name_problem("a", "deb") and name_problem("A", "deb") and not name_problem("A", "rpm")
    assert name_problem("nova", "deb") is None


@pytest.mark.parametrize("fmt", ["deb", "rpm"])
def test_an_interrupted_package_build_leaves_no_partial_file(tmp_path: Path, fmt: str) -> None:
    from isolate.package.deb import build_deb
    from isolate.package.rpm import build_rpm
    from isolate.proc import Runner

    class Interrupted(Runner):
        def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
            for a in argv:  # the tool has begun writing its output ...
                if str(a).endswith((".deb", ".spec")):
                    Path(str(a).replace(".spec", ".rpm")).write_bytes(b"partial")
            raise KeyboardInterrupt  # ... when the user presses ^C

    root = tmp_path / "bundle"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "nova-manage").write_text("#!/bin/sh\n")
    out = tmp_path / "out"
    out.mkdir()
    work = out / ".isolate-build-1"
    work.mkdir()
    build = build_deb if fmt == "deb" else build_rpm
    with pytest.raises(KeyboardInterrupt):
        build(root, out, _info(), work=work, runner=Interrupted())
    assert [p.name for p in out.iterdir()] == [".isolate-build-1"]  # removed by the builder
