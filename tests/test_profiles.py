"""Runtime and host profiles: loading, validation messages, and `isolate profiles`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from isolate.errors import ProfileError
from isolate.interpreters import Discovery
from isolate.proc import Runner
from isolate.profiles import Catalog, builtin_root, load_host_file, load_runtime_file

GOOD_RUNTIME = """\
name = "app"
description = "a test application"
python = "3.12"
requirements = ["alpha>=1", "beta; python_version >= '3.8'"]
scripts = ["app-cli"]

[target]
arch = "aarch64"
glibc = "2.28"

[tests]
requirements = ["gamma"]
command = ["-m", "unittest", "app.tests"]
env = { APP_TEST = "1" }
timeout = 60

[[host_libraries]]
soname = "libvirt.so.0"
purpose = "talks to libvirtd"
required = false
"""

GOOD_HOST = """\
id = "myhost-1"
name = "My Host 1"
distro = "debian"
release = "12"
codename = "bookworm"
arch = "x86_64"
python = "2.7.18"

[libc]
family = "glibc"
version = "2.36"

[provision]
method = "debootstrap"
suite = "bookworm"
packages = ["python2"]
"""

# What each built-in host must say: (libc family, libc version, platform Python major.minor).
HOST_FACTS = {
    "debian-11": ("glibc", "2.31", "3.9"),
    "debian-12": ("glibc", "2.36", "3.11"),
    "debian-13": ("glibc", "2.41", "3.13"),
    "ubuntu-20.04": ("glibc", "2.31", "3.8"),
    "ubuntu-22.04": ("glibc", "2.35", "3.10"),
    "ubuntu-24.04": ("glibc", "2.39", "3.12"),
    "rhel-8": ("glibc", "2.28", "3.6"),
    "rhel-9": ("glibc", "2.34", "3.9"),
    "alpine-3.20": ("musl", "1.2.5", "3.12"),
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def runtime_file(ws: Path, name: str, text: str) -> Path:
    return write(ws / "profiles" / "runtimes" / f"{name}.toml", text)


def host_file(ws: Path, name: str, text: str) -> Path:
    return write(ws / "profiles" / "hosts" / f"{name}.toml", text)


def fake_interpreters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make discovery see exactly one interpreter: the one running the tests, on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


# -- loading good profiles -----------------------------------------------------------


def test_good_runtime_profile_loads(workspace):
    loaded = load_runtime_file(runtime_file(workspace, "app", GOOD_RUNTIME))
    p = loaded.profile
    assert (p.name, p.python, p.python_tuple) == ("app", "3.12", (3, 12))
    assert p.requirements == ("alpha>=1", "beta; python_version >= '3.8'")
    assert p.top_level_names == ("alpha", "beta")
    assert (p.arch, p.glibc, p.scripts) == ("aarch64", "2.28", ("app-cli",))
    assert p.tests.requirements == ("gamma",)
    assert p.tests.command == ("-m", "unittest", "app.tests")
    assert dict(p.tests.env) == {"APP_TEST": "1"}
    assert p.tests.timeout == 60.0
    assert [lib.soname for lib in p.host_libraries] == ["libvirt.so.0"]
    assert p.host_libraries[0].required is False
    assert len(loaded.sha256) == 64


def test_minimal_runtime_profile_gets_defaults(workspace):
    text = 'name = "app"\npython = "3.8"\nrequirements = ["alpha"]\n'
    p = load_runtime_file(runtime_file(workspace, "app", text)).profile
    assert (p.arch, p.glibc, p.scripts, p.constraints) == ("x86_64", "2.17", None, None)
    assert p.tests.requirements == ()
    assert p.host_libraries == ()


def test_good_host_profile_loads(workspace):
    h = load_host_file(host_file(workspace, "myhost-1", GOOD_HOST)).profile
    assert (h.id, h.distro, h.release, h.python) == ("myhost-1", "debian", "12", "2.7.18")
    assert (h.libc.family, h.libc.version) == ("glibc", "2.36")
    assert (h.provision.method, h.provision.suite, h.provision.variant) == (
        "debootstrap", "bookworm", "minbase")
    assert h.provision.packages == ("python2",)


def test_host_without_python(workspace):
    text = GOOD_HOST.replace('python = "2.7.18"', 'python = "none"')
    assert load_host_file(host_file(workspace, "myhost-1", text)).profile.python is None


# -- built-in profiles -------------------------------------------------------------------


def test_builtin_nova_profile_validates():
    loaded = load_runtime_file(builtin_root() / "profiles" / "runtimes" / "nova.toml")
    p = loaded.profile
    assert p.name == "nova"
    assert p.python == "3.13" and p.interpreter == "source"
    assert p.requirements == ("nova==34.0.0", "libvirt-python")
    # the libvirt binding is compiled against pinned libvirt 7.0 files; libvirt is the host's
    assert p.native_builds == {"libvirt-python": "libvirt-7.0"}
    virt = next(h for h in p.host_libraries if h.soname == "libvirt.so.0")
    assert (virt.required, virt.feature) == (False, "libvirt driver")
    assert "test:///default" in virt.smoke
    assert p.tests.command[:2] == ("-m", "unittest")
    assert p.tests.requirements, "nova's unit tests need test requirements"


def test_every_builtin_host_profile_validates():
    paths = sorted((builtin_root() / "profiles" / "hosts").glob("*.toml"))
    ids = {load_host_file(p).profile.id for p in paths}
    assert set(HOST_FACTS) | {"xenserver-6.2-dom0"} <= ids


@pytest.mark.parametrize("host_id", sorted(HOST_FACTS))
def test_builtin_host_facts(host_id):
    h = load_host_file(builtin_root() / "profiles" / "hosts" / f"{host_id}.toml").profile
    family, libc, python = HOST_FACTS[host_id]
    assert (h.libc.family, h.libc.version) == (family, libc)
    assert h.python is not None
    assert ".".join(h.python.split(".")[:2]) == python


# The GCC runtime each release ships: (GLIBCXX_, CXXABI_, GCC_) as the profiles say.
GCC_RUNTIME = {
    "debian-11": ("3.4.28", "1.3.12", "7.0.0"),  # GCC 10
    "debian-12": ("3.4.30", "1.3.13", "12.0.0"),  # GCC 12
    "debian-12-nopython": ("3.4.30", "1.3.13", "12.0.0"),
    "debian-13": ("3.4.33", "1.3.15", "14.0.0"),  # GCC 14
    "ubuntu-20.04": ("3.4.28", "1.3.12", "7.0.0"),  # GCC 10's runtime
    "ubuntu-22.04": ("3.4.30", "1.3.13", "12.0.0"),  # GCC 12's runtime
    "ubuntu-24.04": ("3.4.33", "1.3.15", "14.0.0"),  # GCC 14's runtime
    "rhel-8": ("3.4.25", "1.3.11", "7.0.0"),  # GCC 8
    "rhel-9": ("3.4.29", "1.3.13", "7.0.0"),  # GCC 11
    "xenserver-6.2-dom0": ("3.4.8", "1.3.1", "4.0.0"),  # GCC 4.1
}


@pytest.mark.parametrize("host_id", sorted(GCC_RUNTIME))
def test_builtin_host_gcc_runtime(host_id):
    h = load_host_file(builtin_root() / "profiles" / "hosts" / f"{host_id}.toml").profile
    glibcxx, cxxabi, gcc = GCC_RUNTIME[host_id]
    assert dict(h.gcc_runtime) == {"glibcxx": glibcxx, "cxxabi": cxxabi, "gcc": gcc}
    assert h.provides("glibcxx") == glibcxx and h.provides("glibc") == h.libc.version


def test_runtime_target_gcc_runtime_and_hosts(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME.replace(
        "[target]\n", '[target]\nglibcxx = "3.4.25"\ngcc = "7.0.0"\nhosts = ["debian-12", "local-*"]\n'))
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["target"]["glibcxx"] == "3.4.25" and data["target"]["gcc"] == "7.0.0"
    assert data["target"]["hosts"] == ["debian-12", "local-*"]
    assert {h["id"] for h in data["hosts"] if h["required"]} >= {"debian-12"}


def test_bad_gcc_runtime_versions_and_host_patterns(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME.replace(
        "[target]\n", '[target]\nglibcxx = "GLIBCXX_3.4.25"\nhosts = ["debian 12", 5]\n'))
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert "target.glibcxx: 'GLIBCXX_3.4.25' is not a version such as \"3.4.25\"" in r.err
    assert "target.hosts[0]: 'debian 12' is not a host id or pattern" in r.err
    assert "target.hosts[1]: expected a string" in r.err
    host_file(workspace, "myhost-1", GOOD_HOST + '\n[gcc_runtime]\ncxxabi = "new"\nglibc = "2"\n')
    r = run_isolate("--root", workspace, "profiles", "show", "myhost-1")
    assert r.code == 2
    assert "gcc_runtime.cxxabi: 'new' is not a version" in r.err
    assert "gcc_runtime.glibc: unknown key" in r.err


def test_builtin_appliance_host_is_static_with_old_glibc_and_python():
    h = load_host_file(builtin_root() / "profiles" / "hosts" / "xenserver-6.2-dom0.toml").profile
    assert (h.libc.family, h.libc.version) == ("glibc", "2.5")
    assert h.python is not None and h.python.startswith("2.4")
    assert h.provision.method == "static"


@pytest.mark.parametrize("host_id", ["debian-11", "debian-12", "debian-13"])
def test_builtin_debian_hosts_are_provisionable(host_id):
    h = load_host_file(builtin_root() / "profiles" / "hosts" / f"{host_id}.toml").profile
    assert h.provision.method == "debootstrap"
    assert h.provision.suite == h.codename


# -- isolate profiles -------------------------------------------------------------------


def _section(out: str, title: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index(title) + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        if line.startswith("    "):  # a continuation line of the entry above
            continue
        body.append(line)
    return body


def test_profiles_lists_both_kinds_one_line_each(run_isolate, tmp_path, monkeypatch):
    fake_interpreters(tmp_path, monkeypatch)
    r = run_isolate("profiles", cwd=tmp_path)  # no workspace here: the built-ins
    assert r.code == 0, r.err
    runtimes = _section(r.out, "runtime profiles:")
    hosts = _section(r.out, "host profiles:")
    assert [line.split()[0] for line in runtimes] == ["nova"]
    assert "nova==34.0.0" in runtimes[0]
    host_ids = [line.split()[0] for line in hosts]
    assert len(host_ids) == len(set(host_ids))
    assert set(HOST_FACTS) | {"xenserver-6.2-dom0"} <= set(host_ids)
    local = f"local-{sys.version_info[0]}.{sys.version_info[1]}"
    assert local in host_ids
    assert [i for i in host_ids if i.startswith("local-")] == [local]


def test_profiles_has_a_local_host_per_interpreter_found(run_isolate, tmp_path, monkeypatch):
    found = Discovery(Runner()).by_minor()
    r = run_isolate("profiles", cwd=tmp_path)
    assert r.code == 0, r.err
    host_ids = [line.split()[0] for line in _section(r.out, "host profiles:")]
    assert [i for i in host_ids if i.startswith("local-")] == [
        f"local-{a}.{b}" for a, b in found
    ]


def test_local_host_from_pyenv(run_isolate, tmp_path, monkeypatch):
    version = ".".join(map(str, sys.version_info[:3]))
    bindir = tmp_path / "pyenv" / "versions" / version / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    local = f"local-{sys.version_info[0]}.{sys.version_info[1]}"
    r = run_isolate("profiles", "show", local, cwd=tmp_path)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["kind"] == "host"
    assert data["python"] == version
    assert data["provision"]["method"] == "local"
    assert Path(data["provision"]["interpreter"]).resolve() == Path(sys.executable).resolve()
    assert "pyenv" in data["name"]


def test_profiles_json(run_isolate, tmp_path, monkeypatch):
    fake_interpreters(tmp_path, monkeypatch)
    r = run_isolate("profiles", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert [rt["name"] for rt in data["runtimes"]] == ["nova"]
    assert "debian-12" in [h["id"] for h in data["hosts"]]


def test_profiles_show_nova(run_isolate, tmp_path):
    r = run_isolate("profiles", "show", "nova", cwd=tmp_path)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["kind"] == "runtime"
    assert (data["name"], data["python"], data["requirements"]) == (
        "nova", "3.13", ["nova==34.0.0", "libvirt-python"])
    assert data["interpreter"] == "source"
    assert data["target"]["glibc"] == "2.28"
    required = {"debian-11", "debian-12", "debian-13", "ubuntu-20.04", "ubuntu-22.04",
                "ubuntu-24.04", "rhel-8", "rhel-9"}
    assert required | {"local-*"} == set(data["target"]["hosts"])
    assert {h["id"] for h in data["hosts"]} >= set(HOST_FACTS)
    marked = {h["id"] for h in data["hosts"] if h["required"]}
    assert required <= marked
    assert not marked & {"alpine-3.20", "xenserver-6.2-dom0", "debian-12-nopython"}
    assert len(data["sha256"]) == 64
    assert data["host_libraries"][0]["soname"] == "libvirt.so.0"


def test_profiles_show_debian_12(run_isolate, tmp_path):
    r = run_isolate("profiles", "show", "debian-12", cwd=tmp_path)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["kind"] == "host"
    assert (data["id"], data["python"], data["codename"]) == ("debian-12", "3.11.2", "bookworm")
    assert data["libc"] == {"family": "glibc", "version": "2.36"}
    assert data["provision"]["method"] == "debootstrap"
    assert data["provision"]["suite"] == "bookworm"


def test_workspace_profiles_override_builtin_ones(run_isolate, workspace):
    runtime_file(workspace, "nova", GOOD_RUNTIME.replace('"app"', '"nova"'))
    host_file(workspace, "debian-12", GOOD_HOST.replace('"myhost-1"', '"debian-12"'))
    r = run_isolate("profiles", "show", "nova", cwd=workspace / "profiles")  # found upward
    assert r.code == 0, r.err
    assert json.loads(r.out)["requirements"] == ["alpha>=1", "beta; python_version >= '3.8'"]
    r = run_isolate("--root", workspace, "profiles", "show", "debian-12")
    assert json.loads(r.out)["python"] == "2.7.18"


def test_workspace_profiles_are_listed(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME)
    host_file(workspace, "myhost-1", GOOD_HOST)
    r = run_isolate("--root", workspace, "profiles")
    assert r.code == 0, r.err
    assert [line.split()[0] for line in _section(r.out, "runtime profiles:")] == ["app", "nova"]
    assert "myhost-1" in [line.split()[0] for line in _section(r.out, "host profiles:")]


# -- unknown ids ---------------------------------------------------------------------------


def test_unknown_runtime_lists_known_ones_and_suggests(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME)
    r = run_isolate("--root", workspace, "lock", "nvoa")
    assert r.code == 2
    assert "unknown runtime profile 'nvoa'" in r.err
    assert "did you mean 'nova'?" in r.err
    assert "app, nova" in r.err
    assert r.err.rstrip().splitlines()[-1].startswith("hint:")


def test_unknown_host_lists_known_ones_and_suggests(run_isolate, tmp_path):
    r = run_isolate("profiles", "show", "debain-12", cwd=tmp_path)
    assert r.code == 2
    assert "unknown profile 'debain-12'" in r.err
    assert "did you mean 'debian-12'?" in r.err
    assert "debian-11, debian-11-libvirt, debian-12" in r.err


def test_profiles_show_unknown_id_considers_runtimes_too(run_isolate, tmp_path):
    # `show` takes either kind of id, so a typo of a runtime must be caught as such.
    r = run_isolate("profiles", "show", "nvoa", cwd=tmp_path)
    assert r.code == 2
    assert "did you mean 'nova'?" in r.err
    assert "nova" in r.err.split("known", 1)[-1]


# -- invalid profiles ------------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(run_isolate, workspace):
    path = runtime_file(workspace, "app", 'name = "app"\npython = "3.12\nrequirements = []\n')
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert str(path) in r.err
    assert "TOML syntax error" in r.err
    assert "line 2" in r.err
    assert "hint:" in r.err


def test_misspelled_key_is_named_with_the_closest_key_and_line(run_isolate, workspace):
    path = runtime_file(workspace, "app", 'name = "app"\npyhton = "3.12"\nrequirements = ["a"]\n')
    r = run_isolate("--root", workspace, "lock", "app")
    assert r.code == 2
    assert str(path) in r.err
    assert "line 2: pyhton: unknown key; did you mean 'python'?" in r.err
    assert "python: missing" in r.err


def test_misspelled_key_in_a_table(run_isolate, workspace):
    text = GOOD_RUNTIME.replace("command =", "comand =")
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    line = text.splitlines().index('comand = ["-m", "unittest", "app.tests"]') + 1
    assert f"line {line}: tests.comand: unknown key; did you mean 'command'?" in r.err


def test_misspelled_host_key(run_isolate, workspace):
    host_file(workspace, "myhost-1", GOOD_HOST.replace('version = "2.36"', 'verison = "2.36"'))
    r = run_isolate("--root", workspace, "profiles", "show", "myhost-1")
    assert r.code == 2
    assert "libc.verison: unknown key; did you mean 'version'?" in r.err
    assert "libc.version: missing" in r.err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('requirements = "x"', "requirements: expected a list, got string 'x'"),
        ("requirements = [1]", "requirements[0]: expected a string, got integer 1"),
        ("python = 3.12", "python: expected a string, got number 3.12"),
    ],
)
def test_wrong_type_is_an_input_error(run_isolate, workspace, line, expected):
    text = 'name = "app"\npython = "3.12"\nrequirements = ["alpha"]\n'
    key = line.split(" ")[0]
    text = "\n".join(line if ln.startswith(key + " ") else ln for ln in text.splitlines()) + "\n"
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "lock", "app")
    assert r.code == 2
    assert expected in r.err


def test_wrong_type_in_tests_table(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME.replace("timeout = 60", 'timeout = "60"'))
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert "tests.timeout: expected a number, got string '60'" in r.err


def test_invalid_requirement_string(run_isolate, workspace):
    text = 'name = "app"\npython = "3.12"\nrequirements = ["alpha", "beta >=="]\n'
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "lock", "app")
    assert r.code == 2
    assert "line 3: requirements[1]: 'beta >==' is not a valid requirement" in r.err


def test_invalid_test_requirement_string(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME.replace('["gamma"]', '["gamma gamma"]'))
    r = run_isolate("--root", workspace, "lock", "app")
    assert r.code == 2
    assert "tests.requirements[0]: 'gamma gamma' is not a valid requirement" in r.err


@pytest.mark.parametrize("python", ["2.7", "3.7"])
def test_runtime_python_older_than_38_is_rejected(run_isolate, workspace, python):
    runtime_file(workspace, "app", GOOD_RUNTIME.replace('"3.12"', f'"{python}"'))
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert f"python: runtimes need CPython 3.8 or newer, got '{python}'" in r.err


def test_runtime_python_must_be_major_minor(run_isolate, workspace):
    runtime_file(workspace, "app", GOOD_RUNTIME.replace('"3.12"', '"3.12.1"'))
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert "'3.12.1' is not a major.minor version" in r.err


def test_several_problems_are_reported_at_once(run_isolate, workspace):
    text = (
        'name = "app"\n'
        'python = "2.7"\n'
        'requirements = ["ok", "not ok"]\n'
        "[target]\n"
        'arch = "sparc"\n'
        "[tests]\n"
        "timout = 5\n"
    )
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert "invalid runtime profile (4 problems)" in r.err
    assert "line 2: python:" in r.err
    assert "line 3: requirements[1]:" in r.err
    assert "line 5: target.arch: 'sparc' is not one of x86_64, aarch64" in r.err
    assert "line 7: tests.timout: unknown key; did you mean 'timeout'?" in r.err


def test_host_problems_are_reported_at_once(run_isolate, workspace):
    text = (GOOD_HOST.replace('family = "glibc"', 'family = "uclibc"')
            .replace('method = "debootstrap"', 'method = "vagrant"')
            .replace('arch = "x86_64"', 'arch = "i386"'))
    host_file(workspace, "myhost-1", text)
    r = run_isolate("--root", workspace, "profiles", "show", "myhost-1")
    assert r.code == 2
    assert "invalid host profile (3 problems)" in r.err
    assert "libc.family: 'uclibc' is not one of glibc, musl" in r.err
    assert "provision.method: 'vagrant' is not one of debootstrap, local, static" in r.err
    assert "arch: 'i386' is not one of x86_64, aarch64" in r.err


def test_line_numbers_point_into_the_right_array_table(run_isolate, workspace):
    text = GOOD_RUNTIME + '\n[[host_libraries]]\nsoname = "libfoo.so.1"\nrequired = "yes"\n'
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    line = len(text.splitlines())  # `required = "yes"` is the last line
    assert f"line {line}: host_libraries[1].required: expected true or false" in r.err


def test_runtime_name_must_match_file_name(run_isolate, workspace):
    path = runtime_file(workspace, "app", GOOD_RUNTIME.replace('name = "app"', 'name = "other"'))
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert str(path) in r.err
    assert "line 1: name: 'other' must match the file name 'app'" in r.err


def test_host_id_must_match_file_name(run_isolate, workspace):
    host_file(workspace, "myhost-2", GOOD_HOST)
    r = run_isolate("--root", workspace, "profiles", "show", "myhost-2")
    assert r.code == 2
    assert "id: 'myhost-1' must match the file name 'myhost-2'" in r.err


def test_empty_requirements(workspace):
    path = runtime_file(workspace, "app", 'name = "app"\npython = "3.12"\nrequirements = []\n')
    with pytest.raises(ProfileError) as info:
        load_runtime_file(path)
    assert "requirements: must list at least one requirement" in (info.value.details or "")


def test_not_utf8(run_isolate, workspace):
    path = workspace / "profiles" / "runtimes" / "app.toml"
    path.write_bytes(b'name = "app\xff"\n')
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert "not UTF-8" in r.err


def test_an_invalid_profile_breaks_the_listing_with_a_message(run_isolate, workspace):
    runtime_file(workspace, "app", 'name = "app"\n')
    r = run_isolate("--root", workspace, "profiles")
    assert r.code == 2
    assert "app.toml: invalid runtime profile" in r.err


def test_catalog_lock_path_prefers_workspace(workspace):
    cat = Catalog(root=workspace, discovery=Discovery(Runner(), env={"PATH": os.devnull}))
    assert cat.lock_path("nova").parent == builtin_root() / "constraints"
    (workspace / "constraints" / "nova.txt").write_text("")
    assert cat.lock_path("nova") == workspace / "constraints" / "nova.txt"
    assert cat.lock_path("app") == workspace / "constraints" / "app.txt"


def test_a_junit_file_for_a_command_isolate_cannot_read(workspace):
    text = GOOD_RUNTIME.replace('command = ["-m", "unittest", "app.tests"]',
                                'command = ["-m", "app.selftest"]\njunit = "out/report.xml"')
    p = load_runtime_file(runtime_file(workspace, "app", text)).profile
    assert p.tests.junit == "out/report.xml"
    assert p.tests.to_dict()["junit"] == "out/report.xml"
    assert load_runtime_file(runtime_file(workspace, "app", GOOD_RUNTIME)).profile.tests.junit is None


@pytest.mark.parametrize(
    ("command", "junit", "expected"),
    [
        ('["-m", "unittest", "app.tests"]', '"r.xml"',
         "tests.junit: the command runs unittest, whose outcomes isolate reads itself"),
        ('["-m", "pytest", "app"]', '"r.xml"', "tests.junit: the command runs pytest"),
        ('["stestr", "run"]', '"r.xml"', "tests.junit: the command runs stestr"),
        ('["-m", "app.selftest"]', '" "', "tests.junit: must be a file name"),
        ('["-m", "app.selftest"]', "1", "tests.junit: expected a string, got integer 1"),
    ],
)
def test_bad_junit_is_named(run_isolate, workspace, command, junit, expected):
    text = GOOD_RUNTIME.replace('command = ["-m", "unittest", "app.tests"]',
                                f"command = {command}\njunit = {junit}")
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert expected in r.err


def test_junit_without_a_command_is_named(run_isolate, workspace):
    text = GOOD_RUNTIME.replace('command = ["-m", "unittest", "app.tests"]', 'junit = "r.xml"')
    runtime_file(workspace, "app", text)
    r = run_isolate("--root", workspace, "profiles", "show", "app")
    assert r.code == 2
    assert "tests.junit: names the JUnit XML file of the test command, but there is no command" \
        in r.err
