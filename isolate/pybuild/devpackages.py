"""Development packages: pinned Debian .deb files a native binding is compiled against.

``profiles/devpackages/NAME.toml`` pins the .deb files (package, version, URL, sha256)
that hold a host library's headers, pkg-config files and link stubs, e.g. those of
libvirt 7.0 for libvirt-python. They are downloaded once, hash-checked and unpacked
with ``dpkg-deb -x`` into ``<cache>/devpackages/<name>-<digest>`` (never installed), and
their pkg-config files are rewritten to point there. The libraries they provide are the
host's at run time (``provides``): a runtime never carries them.

A download whose sha256 differs from the pin is refused and nothing is kept; the tree is
unpacked in a temporary directory and renamed into place whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from isolate.errors import InputError
from isolate.proc import Runner
from isolate.pybuild.build import fetch_source
from isolate.pybuild.lock import Source, read_toml, string_field

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - 3.10
    pass

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_KNOWN_TOP = ("debs", "name", "provides")
_KNOWN_DEB = ("arch", "package", "sha256", "url", "version")


@dataclass(frozen=True, kw_only=True, slots=True)
class Deb:
    package: str  # "libvirt-dev"
    version: str  # "7.0.0-3+deb11u3"
    arch: str  # "amd64"
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def source(self) -> Source:
        return Source(name=self.package, version=self.version, url=self.url, sha256=self.sha256)


@dataclass(frozen=True, kw_only=True, slots=True)
class DevPackages:
    name: str  # "libvirt-7.0"
    provides: tuple[str, ...]  # sonames of the host libraries these files are the stubs of
    debs: tuple[Deb, ...]
    path: Path
    sha256: str  # of the file's bytes: the cache key of the unpacked tree and of builds

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.sha256[:16]}"


def load_dev_packages(path: Path) -> DevPackages:
    """Read and validate a development-packages lock, naming every problem at once."""
    data, raw = read_toml(path, "the development-packages lock")
    problems: list[str] = []
    for key in sorted(set(data) - set(_KNOWN_TOP)):
        problems.append(f"{key}: unknown key (known: {', '.join(_KNOWN_TOP)})")
    name = string_field(data, "name", "", problems)
    if name and not _NAME.match(name):
        problems.append(f"name: {name!r} is not a valid name")
    if name and name != path.stem:
        problems.append(f"name: {name!r} differs from the file's name {path.stem!r}")
    provides = data.get("provides")
    if (not isinstance(provides, list) or not provides
            or not all(isinstance(p, str) and ".so" in p for p in provides)):
        problems.append("provides: missing, or not a list of sonames such as \"libvirt.so.0\"")
        provides = []
    raw_debs = data.get("debs")
    debs: list[Deb] = []
    if not isinstance(raw_debs, list) or not raw_debs:
        problems.append("debs: missing, or not a list of [[debs]] tables")
        raw_debs = []
    for i, entry in enumerate(raw_debs):
        where = f"debs[{i}]."
        if not isinstance(entry, dict):
            problems.append(f"debs[{i}]: not a table")
            continue
        for key in sorted(set(entry) - set(_KNOWN_DEB)):
            problems.append(f"{where}{key}: unknown key (known: {', '.join(_KNOWN_DEB)})")
        package = string_field(entry, "package", where, problems)
        version = string_field(entry, "version", where, problems)
        arch = string_field(entry, "arch", where, problems)
        url = string_field(entry, "url", where, problems)
        sha = string_field(entry, "sha256", where, problems)
        if package and not _PACKAGE.match(package):
            problems.append(f"{where}package: {package!r} is not a Debian package name")
        if url and not url.startswith(("https://", "http://", "file://")):
            problems.append(f"{where}url: {url!r} is not an http(s) or file URL")
        if url and not url.endswith(".deb"):
            problems.append(f"{where}url: {url!r} does not name a .deb file")
        if sha and not _SHA256.match(sha):
            problems.append(f"{where}sha256: not 64 lowercase hex digits")
        debs.append(Deb(package=package, version=version, arch=arch, url=url, sha256=sha))
    if problems:
        raise InputError(f"{path}: invalid development-packages lock",
                         details="\n".join(f"  {p}" for p in problems),
                         hint="see profiles/devpackages/libvirt-7.0.toml for the format")
    return DevPackages(name=name, provides=tuple(str(p) for p in provides), debs=tuple(debs),
                       path=path, sha256=hashlib.sha256(raw).hexdigest())


def _rewrite_pkgconfig(root: Path) -> list[Path]:
    """Point the unpacked pkg-config files at ``root`` (they say ``prefix=/usr``)."""
    rewritten = []
    for pc in sorted(root.glob("usr/lib/*/pkgconfig/*.pc")) + sorted(
            root.glob("usr/lib/pkgconfig/*.pc")) + sorted(root.glob("usr/share/pkgconfig/*.pc")):
        text = pc.read_text()
        new = re.sub(r"^(\w+)=/usr(?=/|$)", lambda m: f"{m.group(1)}={root}/usr", text,
                     flags=re.MULTILINE)
        if new != text:
            pc.write_text(new)
            rewritten.append(pc)
    return rewritten


@dataclass(frozen=True, kw_only=True, slots=True)
class DevRoot:
    """An unpacked development-packages lock."""

    packages: DevPackages
    root: Path  # <cache>/devpackages/<name>-<digest>

    def pkgconfig_dirs(self) -> tuple[Path, ...]:
        return tuple(sorted(p for p in (*self.root.glob("usr/lib/*/pkgconfig"),
                                        self.root / "usr/lib/pkgconfig",
                                        self.root / "usr/share/pkgconfig") if p.is_dir()))

    def include_dirs(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.root / "usr" / "include",) if p.is_dir())

    def lib_dirs(self) -> tuple[Path, ...]:
        return tuple(sorted(p.parent for p in self.root.glob("usr/lib/*/pkgconfig")))


def dev_root(packages: DevPackages, *, runner: Runner, cache: Path) -> DevRoot:
    """The unpacked tree of ``packages``: downloaded, hash-checked and unpacked once."""
    base = cache / "devpackages"
    final = base / packages.dir_name
    if (final / ".complete").is_file():
        return DevRoot(packages=packages, root=final)
    base.mkdir(parents=True, exist_ok=True)
    # Every download is checked before anything is unpacked: a bad pin leaves nothing.
    files = [fetch_source(d.source(), cache, lock_name=f"development-packages lock "
                          f"{packages.path}", key="debs") for d in packages.debs]
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{packages.dir_name}.", suffix=".tmp"))
    try:
        for deb, f in zip(packages.debs, files, strict=True):
            runner.run(["dpkg-deb", "-x", f, tmp], what=f"unpacking {deb.filename}")
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(final)  # an incomplete tree of an interrupted run
        # The pkg-config files name the final place: rewrite for it, then rename.
        _rewrite_pkgconfig_for(tmp, final)
        (tmp / ".complete").write_text(packages.sha256 + "\n")
        try:
            tmp.rename(final)
        except OSError:
            if not (final / ".complete").is_file():  # not another process's result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return DevRoot(packages=packages, root=final)


def _rewrite_pkgconfig_for(tree: Path, final: Path) -> None:
    """Rewrite ``tree``'s pkg-config files for the directory it will be renamed to."""
    for pc in _rewrite_pkgconfig(tree):
        pc.write_text(pc.read_text().replace(f"={tree}/usr", f"={final}/usr"))


def pkgconfig_env(roots: list[DevRoot]) -> dict[str, str]:
    """Variables that make pkg-config find the pinned packages' files and no others."""
    return {"PKG_CONFIG_LIBDIR": os.pathsep.join(str(p) for r in roots
                                                 for p in r.pkgconfig_dirs()),
            "PKG_CONFIG_PATH": ""}


def native_build_env(profile_builds: dict[str, Path], *, runner: Runner,
                     cache: Path) -> dict[str, str]:
    """The pkg-config environment of every development-packages lock in
    ``profile_builds`` (name -> file), unpacked first when needed: what resolving a
    binding's sdist needs (its setup.py asks pkg-config)."""
    if not profile_builds:
        return {}
    roots = [dev_root(load_dev_packages(path), runner=runner, cache=cache)
             for _name, path in sorted(profile_builds.items())]
    return pkgconfig_env(roots)
