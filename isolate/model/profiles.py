"""Runtime profiles (what to build) and host profiles (where it must run)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from isolate.model import floors
from isolate.model.fields import Fields, Problem
from isolate.model.hostlibs import ShippedLibrary

ARCHES = ("x86_64", "aarch64")
LIBC_FAMILIES = ("glibc", "musl")
PROVISION_METHODS = ("debootstrap", "local", "static")
INTERPRETER_PROVIDERS = ("local", "source")
_MINOR = re.compile(r"^(\d+)\.(\d+)$")
_VERSION = re.compile(r"^\d+(\.\d+){1,2}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_MAINTAINER = re.compile(r"^[^<>\n]+ <[^<>@\s]+@[^<>@\s]+>$")
_RELEASE = re.compile(r"^[A-Za-z0-9.+~]+$")


def parse_minor(text: str) -> tuple[int, int] | None:
    m = _MINOR.match(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True, kw_only=True, slots=True)
class HostLibrary:
    """A shared library the application expects the host to provide."""

    soname: str
    purpose: str = ""
    required: bool = True
    # what is unavailable without it, for reports ("libvirt driver"); default: the soname
    feature: str = ""
    # Python code the matrix runs with the runtime's interpreter where the host has the
    # library, to show the feature works (e.g. libvirt's in-process test driver)
    smoke: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"soname": self.soname, "purpose": self.purpose, "required": self.required,
                "feature": self.feature, "smoke": self.smoke}


def test_runner(command: Sequence[str]) -> str:
    """unittest, pytest, stestr or other: whose outcomes the matrix probe reads (the probe,
    which runs inside bundles, makes the same choice)."""
    argv = list(command)
    module = argv[:1] == ["-m"]
    head = argv[1] if module and len(argv) > 1 else (argv[0] if argv else "")
    if head in ("pytest", "stestr") or (head == "unittest" and module):
        return head
    return "pytest" if head == "py.test" else "other"


@dataclass(frozen=True, kw_only=True, slots=True)
class TestSpec:
    """The application's own tests: what they need and how to run them."""

    requirements: tuple[str, ...] = ()
    # argv after the bundled interpreter, e.g. ("-m", "unittest", "nova.tests.unit.objects")
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 1800.0
    # for a command isolate cannot read outcomes from (not unittest, pytest or stestr):
    # the JUnit XML file it writes, relative to its working directory
    junit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirements": list(self.requirements),
            "command": list(self.command),
            "env": dict(self.env),
            "timeout": self.timeout,
            "junit": self.junit,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class PackageSpec:
    """The ``[package]`` table: what a .deb or .rpm of the runtime needs beyond the
    manifest. Every key is optional here; ``missing_for`` names those a format needs."""

    name: str | None = None  # default: the runtime's name
    maintainer: str | None = None  # "Name <email>"
    license: str | None = None  # an SPDX expression, e.g. "Apache-2.0"
    summary: str | None = None  # one line; default: the profile's description
    homepage: str | None = None
    section: str = "misc"  # Debian section
    release: str = "1"  # the package revision (Debian revision, RPM Release)
    prefix: str | None = None  # default: /opt/<name>
    links: tuple[str, ...] = ()  # launchers symlinked into /usr/bin
    # soname of a host library -> the distribution package that provides it
    debian_libraries: Mapping[str, str] = field(default_factory=dict)
    rpm_libraries: Mapping[str, str] = field(default_factory=dict)
    debian_depends: tuple[str, ...] = ()  # extra Depends, verbatim
    rpm_requires: tuple[str, ...] = ()  # extra Requires, verbatim

    def missing_for(self, fmt: str, *, description: str,
                    host_libraries: tuple[HostLibrary, ...]) -> list[Problem]:
        """The keys format ``fmt`` ("deb" or "rpm") needs and this table lacks."""
        out: list[Problem] = []
        if not self.maintainer:
            out.append(Problem("package.maintainer",
                               f"missing; a .{fmt} names its maintainer (\"Name <email>\")"))
        if not self.license:
            out.append(Problem("package.license",
                               f"missing; a .{fmt} states its license (e.g. \"Apache-2.0\")"))
        if not (self.summary or description):
            out.append(Problem("package.summary", f"missing; a .{fmt} needs a one-line "
                                                  "summary (or the profile's description)"))
        table, libs = (("debian", self.debian_libraries) if fmt == "deb"
                       else ("rpm", self.rpm_libraries))
        for lib in host_libraries:
            if lib.soname not in libs:
                out.append(Problem(f"package.{table}.libraries.\"{lib.soname}\"",
                                   f"missing; the {table} package that provides the host "
                                   f"library {lib.soname} (a dependency of the .{fmt})"))
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> PackageSpec:
        name = f.string("name")
        maintainer = f.string("maintainer")
        if maintainer is not None and not _MAINTAINER.match(maintainer):
            f.problem("maintainer", f"{maintainer!r} is not \"Name <email>\"")
        license_ = f.string("license")
        summary = f.string("summary")
        if summary is not None and ("\n" in summary or not summary.strip()):
            f.problem("summary", "must be one non-empty line")
        homepage = f.string("homepage")
        if homepage is not None and not homepage.startswith(("https://", "http://")):
            f.problem("homepage", f"{homepage!r} is not an http(s) URL")
        section = f.string("section", "misc") or "misc"
        release = f.string("release", "1") or "1"
        if not _RELEASE.match(release):
            f.problem("release", f"{release!r} is not a package revision such as \"1\" "
                                 "(letters, digits, '.', '+', '~')")
        prefix = f.string("prefix")
        if prefix is not None and (not prefix.startswith("/") or prefix.rstrip("/") == ""
                                   or any(p in ("..", ".") for p in prefix.split("/"))):
            f.problem("prefix", f"{prefix!r} is not an absolute directory such as \"/opt/app\"")
        links = f.str_list("links")
        for i, link in enumerate(links):
            if not link or "/" in link or link.startswith("."):
                f.problem(f"links[{i}]", f"{link!r} is not a launcher name")
        deb = f.table("debian")
        deb_libs = _name_map(deb, "libraries")
        deb_depends = deb.str_list("depends")
        deb.finish()
        rpm = f.table("rpm")
        rpm_libs = _name_map(rpm, "libraries")
        rpm_requires = rpm.str_list("requires")
        rpm.finish()
        f.finish()
        return cls(name=name, maintainer=maintainer, license=license_, summary=summary,
                   homepage=homepage, section=section, release=release,
                   prefix=prefix.rstrip("/") if prefix else None, links=links,
                   debian_libraries=deb_libs, rpm_libraries=rpm_libs,
                   debian_depends=deb_depends, rpm_requires=rpm_requires)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "maintainer": self.maintainer, "license": self.license,
                "summary": self.summary, "homepage": self.homepage, "section": self.section,
                "release": self.release, "prefix": self.prefix, "links": list(self.links),
                "debian": {"libraries": dict(self.debian_libraries),
                           "depends": list(self.debian_depends)},
                "rpm": {"libraries": dict(self.rpm_libraries),
                        "requires": list(self.rpm_requires)}}


def _name_map(f: Fields, key: str) -> dict[str, str]:
    table = f.get(key, dict, {}) or {}
    out: dict[str, str] = {}
    for k, v in table.items():
        if isinstance(v, str) and v:
            out[k] = v
        else:
            f.problem(f"{key}.\"{k}\"", f"expected a package name, got {v!r}")
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeProfile:
    name: str
    python: str  # "3.12"
    requirements: tuple[str, ...]
    description: str = ""
    constraints: str | None = None  # path, relative to the profile's file
    scripts: tuple[str, ...] | None = None  # None: those of the top-level requirements
    arch: str = "x86_64"
    # The highest glibc the finished runtime may need (manylinux_2_N wheels are chosen
    # for it, and `isolate bundle` refuses a result that needs more).
    glibc: str = "2.17"
    # The same contract for the GCC runtime (floors.GCC_RUNTIME_KINDS: glibcxx, cxxabi,
    # gcc), only for the kinds the profile names.
    gcc_runtime: Mapping[str, str] = field(default_factory=dict)
    # Host ids and fnmatch patterns the runtime must run on; every other host is
    # informative. Empty: the profile names none.
    hosts: tuple[str, ...] = ()
    # Where the runtime's CPython comes from: "local" (a CPython of this machine) or
    # "source" (built by isolate from profiles/interpreters/cpython-X.Y.toml).
    interpreter: str = "local"
    tests: TestSpec = field(default_factory=TestSpec)
    host_libraries: tuple[HostLibrary, ...] = ()
    package: PackageSpec = field(default_factory=PackageSpec)
    # Distributions compiled from their sdist against pinned development packages
    # (canonical name -> the name of profiles/devpackages/NAME.toml): bindings to a host
    # library, e.g. {"libvirt-python": "libvirt-7.0"}. Needs interpreter = "source".
    native_builds: Mapping[str, str] = field(default_factory=dict)

    @property
    def ceilings(self) -> dict[str, str]:
        """Floor kind -> the highest version the runtime may need (glibc always)."""
        return {"glibc": self.glibc, **self.gcc_runtime}

    @property
    def python_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def top_level_names(self) -> tuple[str, ...]:
        return tuple(canonicalize_name(Requirement(r).name) for r in self.requirements)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, problems: list[Problem]) -> RuntimeProfile | None:
        f = Fields(data, "", problems)
        name = f.string("name", required=True) or ""
        if name and not _NAME.match(name):
            f.problem("name", f"{name!r} is not a valid name (lower case letters, digits, '.', '_', '-')")
        python = f.string("python", required=True) or ""
        if python:
            minor = parse_minor(python)
            if minor is None:
                f.problem("python", f"{python!r} is not a major.minor version such as \"3.12\"")
            elif minor < (3, 8):
                f.problem("python", f"runtimes need CPython 3.8 or newer, got {python!r}")
        reqs = f.str_list("requirements", required=True)
        if f.has("requirements") and isinstance(data.get("requirements"), list) and not reqs:
            f.problem("requirements", "must list at least one requirement")
        _check_requirements(f, "requirements", reqs)
        description = f.string("description", "") or ""
        constraints = f.string("constraints")
        scripts = f.str_list("scripts") if f.has("scripts") else None
        interpreter = f.string("interpreter", "local") or "local"
        if interpreter not in INTERPRETER_PROVIDERS:
            f.problem("interpreter", f"{interpreter!r} is not one of "
                                     f"{', '.join(INTERPRETER_PROVIDERS)}")

        target = f.table("target")
        arch = target.string("arch", "x86_64") or "x86_64"
        if arch not in ARCHES:
            target.problem("arch", f"{arch!r} is not one of {', '.join(ARCHES)}")
        glibc = target.string("glibc", "2.17") or "2.17"
        if not _VERSION.match(glibc):
            target.problem("glibc", f"{glibc!r} is not a version such as \"2.17\"")
        gcc_runtime = _gcc_runtime(target)
        hosts = target.str_list("hosts")
        for i, pattern in enumerate(hosts):
            if not pattern or any(c.isspace() for c in pattern):
                target.problem(f"hosts[{i}]", f"{pattern!r} is not a host id or pattern "
                               "such as \"debian-12\" or \"local-*\"")
        target.finish()

        t = f.table("tests")
        treqs = t.str_list("requirements")
        _check_requirements(t, "requirements", treqs)
        command = t.str_list("command")
        env_table = t.get("env", dict, {}) or {}
        env: dict[str, str] = {}
        for k, v in env_table.items():
            if isinstance(v, str):
                env[k] = v
            else:
                t.problem(f"env.{k}", f"expected a string, got {type(v).__name__}")
        timeout = t.get("timeout", float, 1800.0)
        timeout = 1800.0 if timeout is None else timeout
        if timeout <= 0:
            t.problem("timeout", "must be a positive number of seconds")
        junit = t.string("junit")
        if junit is not None:
            if not junit.strip():
                t.problem("junit", "must be a file name, e.g. \"report.xml\"")
            elif not command:
                t.problem("junit", "names the JUnit XML file of the test command, but there is "
                                   "no command")
            elif test_runner(command) != "other":
                t.problem("junit", f"the command runs {test_runner(command)}, whose outcomes "
                                   "isolate reads itself: remove junit")
        t.finish()

        libs = []
        for lt in f.tables("host_libraries"):
            soname = lt.string("soname", required=True) or ""
            libs.append(
                HostLibrary(
                    soname=soname,
                    purpose=lt.string("purpose", "") or "",
                    required=bool(lt.get("required", bool, True)),
                    feature=lt.string("feature", "") or "",
                    smoke=lt.string("smoke", "") or "",
                )
            )
            lt.finish()
        native_builds = _native_builds(f, interpreter)
        package = PackageSpec.from_fields(f.table("package"))
        f.finish()
        if problems:
            return None
        return cls(
            name=name,
            python=python,
            requirements=reqs,
            description=description,
            constraints=constraints,
            scripts=scripts,
            arch=arch,
            glibc=glibc,
            interpreter=interpreter,
            gcc_runtime=gcc_runtime,
            hosts=hosts,
            tests=TestSpec(requirements=treqs, command=command, env=env, timeout=timeout,
                           junit=junit),
            host_libraries=tuple(libs),
            package=package,
            native_builds=native_builds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "python": self.python,
            "requirements": list(self.requirements),
            "constraints": self.constraints,
            "scripts": None if self.scripts is None else list(self.scripts),
            "interpreter": self.interpreter,
            "target": {"arch": self.arch, "glibc": self.glibc, **self.gcc_runtime,
                       "hosts": list(self.hosts)},
            "tests": self.tests.to_dict(),
            "host_libraries": [lib.to_dict() for lib in self.host_libraries],
            "package": self.package.to_dict(),
            "native_builds": dict(self.native_builds),
        }


def _native_builds(f: Fields, interpreter: str) -> dict[str, str]:
    table = _name_map(f, "native_builds")
    out: dict[str, str] = {}
    for dist, dev in table.items():
        key = f"native_builds.\"{dist}\""
        if canonicalize_name(dist) != dist:
            f.problem(key, f"write the distribution's canonical name, "
                           f"{canonicalize_name(dist)!r}")
        elif not _NAME.match(dev):
            f.problem(key, f"{dev!r} is not the name of a profiles/devpackages/*.toml file")
        else:
            out[dist] = dev
    if out and interpreter != "source":
        f.problem("native_builds", "compiling bindings against pinned development packages "
                                   "needs the interpreter isolate builds: set "
                                   "interpreter = \"source\"")
    return out


def _shipped_libraries(f: Fields, method: str,
                       packages: tuple[str, ...]) -> dict[str, ShippedLibrary]:
    """A host profile's ``[host_libraries]``: soname -> {version, package, installed}."""
    table = f.table("host_libraries")
    out: dict[str, ShippedLibrary] = {}
    for soname in list(table.keys()):
        lt = table.table(soname)
        key = f"\"{soname}\""
        if ".so" not in soname:
            table.problem(key, f"{soname!r} is not a soname such as \"libvirt.so.0\"")
        version = lt.string("version", required=True) or ""
        if version and not floors.is_version(version):
            lt.problem("version", f"{version!r} is not a version such as \"9.0.0\"")
        package = lt.string("package", "") or ""
        installed = bool(lt.get("installed", bool, True))
        source = lt.string("source", "") or ""
        lt.finish()
        if installed and method == "debootstrap" and package not in packages:
            table.problem(key, f"installed, but its package {package or '(not named)'!r} is "
                               "not in [provision] packages: the root filesystem would lack it "
                               "(add it there, or say installed = false)")
        out[soname] = ShippedLibrary(soname=soname, version=version, package=package,
                                     installed=installed, source=source)
    table.finish()
    return out


def _gcc_runtime(table: Fields) -> dict[str, str]:
    """The GCC runtime versions (glibcxx, cxxabi, gcc) a table names, checked."""
    out: dict[str, str] = {}
    for name in floors.GCC_RUNTIME_KINDS:
        value = table.string(name)
        if value is None:
            continue
        if not floors.is_version(value):
            prefix = floors.kind(name).prefix
            table.problem(name, f"{value!r} is not a version such as \"3.4.25\" (the part "
                                f"after {prefix} in a symbol version)")
        else:
            out[name] = value
    return out


def _check_requirements(f: Fields, key: str, reqs: tuple[str, ...]) -> None:
    for i, text in enumerate(reqs):
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            f.problem(f"{key}[{i}]", f"{text!r} is not a valid requirement: {exc}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Libc:
    family: str  # glibc | musl
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)


@dataclass(frozen=True, kw_only=True, slots=True)
class Provision:
    """How a host can be brought up for tests on this machine."""

    method: str  # debootstrap | local | static
    suite: str | None = None
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    mirror: str = "http://deb.debian.org/debian"
    interpreter: str | None = None  # local: the platform Python's path

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.method == "debootstrap":
            out.update(suite=self.suite, variant=self.variant, packages=list(self.packages),
                       mirror=self.mirror)
        if self.method == "local":
            out["interpreter"] = self.interpreter
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class HostProfile:
    id: str
    name: str
    distro: str
    release: str
    arch: str
    libc: Libc
    python: str | None  # the platform Python's version, or None
    provision: Provision
    codename: str = ""
    notes: str = ""
    # The GCC runtime the release ships (libstdc++.so.6, libgcc_s.so.1): floor kind
    # (glibcxx, cxxabi, gcc) -> the highest version it defines. Empty: unknown.
    gcc_runtime: Mapping[str, str] = field(default_factory=dict)
    # Host libraries (isolate.model.hostlibs) the release ships: soname -> what. Only
    # those with installed = true are on this host; a library the host lacks is absent.
    host_libraries: Mapping[str, ShippedLibrary] = field(default_factory=dict)

    def host_library(self, soname: str) -> ShippedLibrary | None:
        """The host library ``soname`` as this host has it, None when it has not."""
        found = self.host_libraries.get(soname)
        return found if found is not None and found.installed else None

    def provides(self, kind_name: str) -> str | None:
        """The highest version of a floor kind this host provides, None when unknown."""
        if kind_name == "glibc":
            return self.libc.version if self.libc.family == "glibc" else None
        return self.gcc_runtime.get(kind_name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, problems: list[Problem]) -> HostProfile | None:
        f = Fields(data, "", problems)
        hid = f.string("id", required=True) or ""
        if hid and not _NAME.match(hid):
            f.problem("id", f"{hid!r} is not a valid id (lower case letters, digits, '.', '_', '-')")
        name = f.string("name", required=True) or ""
        distro = f.string("distro", required=True) or ""
        release = f.string("release", required=True) or ""
        codename = f.string("codename", "") or ""
        notes = f.string("notes", "") or ""
        arch = f.string("arch", "x86_64") or "x86_64"
        if arch not in ARCHES:
            f.problem("arch", f"{arch!r} is not one of {', '.join(ARCHES)}")
        lt = f.table("libc", required=True)
        family = lt.string("family", required=True) or ""
        if family and family not in LIBC_FAMILIES:
            lt.problem("family", f"{family!r} is not one of {', '.join(LIBC_FAMILIES)}")
        lversion = lt.string("version", required=True) or ""
        if lversion and not _VERSION.match(lversion):
            lt.problem("version", f"{lversion!r} is not a version such as \"2.36\"")
        lt.finish()
        gt = f.table("gcc_runtime")
        gcc_runtime = _gcc_runtime(gt)
        gt.finish()
        python = f.string("python", required=True)
        if python is not None and python != "none" and not _VERSION.match(python):
            f.problem("python", f"{python!r} is not a version such as \"3.11.2\" or \"none\"")
        pt = f.table("provision", required=True)
        method = pt.string("method", required=True) or ""
        if method and method not in PROVISION_METHODS:
            pt.problem("method", f"{method!r} is not one of {', '.join(PROVISION_METHODS)}")
        suite = pt.string("suite", required=method == "debootstrap")
        variant = pt.string("variant", "minbase") or "minbase"
        packages = pt.str_list("packages")
        mirror = pt.string("mirror", "http://deb.debian.org/debian") or ""
        interpreter = pt.string("interpreter", required=method == "local")
        pt.finish()
        host_libraries = _shipped_libraries(f, method, packages)
        f.finish()
        if problems:
            return None
        return cls(
            id=hid,
            name=name,
            distro=distro,
            release=release,
            codename=codename,
            notes=notes,
            arch=arch,
            libc=Libc(family=family, version=lversion),
            gcc_runtime=gcc_runtime,
            host_libraries=host_libraries,
            python=None if python in (None, "none") else python,
            provision=Provision(
                method=method,
                suite=suite,
                variant=variant,
                packages=packages,
                mirror=mirror,
                interpreter=interpreter,
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "distro": self.distro,
            "release": self.release,
            "codename": self.codename,
            "arch": self.arch,
            "libc": {"family": self.libc.family, "version": self.libc.version},
            "gcc_runtime": dict(self.gcc_runtime),
            "host_libraries": {k: v.to_dict() for k, v in sorted(self.host_libraries.items())},
            "python": self.python or "none",
            "provision": self.provision.to_dict(),
            "notes": self.notes,
        }
