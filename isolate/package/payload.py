"""What both package formats share: the package's metadata (from the runtime profile's
``[package]`` table and the manifest), the checks made before a build starts, and the
staged tree (the bundle below its prefix, launcher links in /usr/bin, fixed mtimes)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from isolate.errors import InputError
from isolate.model.manifest import Manifest
from isolate.model.profiles import RuntimeProfile
from isolate.package.names import name_problem, upstream_version

FORMATS = ("deb", "rpm")


@dataclass(frozen=True, kw_only=True, slots=True)
class HostDependency:
    soname: str
    required: bool
    debian: str | None
    rpm: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class PackageInfo:
    name: str
    version: str  # upstream version, Debian/RPM spelling
    release: str
    arch: str  # x86_64 | aarch64 (the profile's spelling)
    prefix: str  # absolute, where the bundle's root is installed
    summary: str
    description: str  # the extended description, plain text paragraphs
    maintainer: str
    license: str
    homepage: str | None
    section: str
    links: tuple[str, ...]
    glibc_floor: str | None
    host_dependencies: tuple[HostDependency, ...]
    debian_depends: tuple[str, ...]
    rpm_requires: tuple[str, ...]
    mtime: int  # SOURCE_DATE_EPOCH of every entry and of the package itself
    manifest_name: str
    tool_version: str
    lock_sha256: str


def package_name(profile: RuntimeProfile) -> str:
    return profile.package.name or profile.name


def default_prefix(profile: RuntimeProfile, prefix: str | None = None) -> str:
    """``prefix`` (from --prefix), else the profile's ``package.prefix``, else /opt/<name>."""
    chosen = prefix or profile.package.prefix or f"/opt/{package_name(profile)}"
    return chosen.rstrip("/")


def check_request(profile: RuntimeProfile, formats: tuple[str, ...], *,
                  prefix: str | None, where: str) -> None:
    """Refuse, before anything is built, a package the profile cannot describe."""
    wanted = [f for f in formats if f in FORMATS]
    if not wanted:
        return
    problems: list[str] = []
    name = package_name(profile)
    for fmt in wanted:
        problems += profile.package.missing_for(fmt, description=profile.description,
                                                host_libraries=profile.host_libraries)
        why = name_problem(name, fmt)
        if why:
            key = "package.name" if profile.package.name else "name"
            problems.append(f"{key}: {why}")
    if prefix is not None and (not prefix.startswith("/") or prefix.rstrip("/") == ""
                               or any(p in ("..", ".") for p in prefix.split("/"))):
        problems.append(f"--prefix: {prefix!r} is not an absolute directory such as /opt/app")
    if profile.scripts is not None:
        for link in profile.package.links:
            if link not in profile.scripts and link != "python3":
                problems.append(f"package.links: {link!r} is not one of the runtime's "
                                f"scripts ({', '.join(profile.scripts)})")
    if problems:
        unique = list(dict.fromkeys(problems))
        raise InputError(
            f"{where}: the runtime profile cannot make a .{' or .'.join(wanted)} package",
            details="\n".join(f"  {p}" for p in unique),
            hint="add the keys named above to the profile's [package] table "
                 "(see README: the [package] table)")


def package_info(profile: RuntimeProfile, manifest: Manifest, *, prefix: str | None,
                 mtime: int) -> PackageInfo:
    pkg = profile.package
    links = tuple(pkg.links)
    unknown = [n for n in links if n not in manifest.scripts and n != "python3"]
    if unknown:
        raise InputError(f"package.links: {', '.join(unknown)} is not a launcher of the bundle",
                         hint=f"its launchers: {', '.join(('python3', *manifest.scripts))}")
    lines = profile.description.strip().splitlines()
    summary = pkg.summary or (lines[0].strip() if lines else f"{profile.name} runtime")
    dists = len(manifest.distributions)
    description = (
        f"A relocatable runtime of {profile.name} {manifest.version}, built by isolate: "
        f"its own CPython {manifest.interpreter.version} and {dists} pinned "
        f"distributions, installed in {default_prefix(profile, prefix)}. "
        "It uses no Python of the host; the host provides the kernel, glibc and the "
        "libraries the package depends on.")
    deps = tuple(HostDependency(soname=h.soname, required=h.required,
                                debian=pkg.debian_libraries.get(h.soname),
                                rpm=pkg.rpm_libraries.get(h.soname))
                 for h in profile.host_libraries)
    return PackageInfo(
        name=package_name(profile), version=upstream_version(manifest.version),
        release=pkg.release, arch=manifest.arch, prefix=default_prefix(profile, prefix),
        summary=summary, description=description, maintainer=pkg.maintainer or "",
        license=pkg.license or "", homepage=pkg.homepage, section=pkg.section, links=links,
        glibc_floor=manifest.elf.glibc_floor, host_dependencies=deps,
        debian_depends=pkg.debian_depends, rpm_requires=pkg.rpm_requires, mtime=mtime,
        manifest_name=manifest.name, tool_version=manifest.tool_version,
        lock_sha256=manifest.lock_sha256)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage(root: Path, dest: Path, info: PackageInfo) -> None:
    """``dest`` = the file system image: ``root`` at ``info.prefix`` (hard links where
    possible), ``/usr/bin/<link>`` -> ``<prefix>/bin/<link>``. Modes 0755/0644."""
    target = dest / info.prefix.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root, target, symlinks=True, copy_function=_link_or_copy)
    if info.links:
        usr_bin = dest / "usr" / "bin"
        usr_bin.mkdir(parents=True, exist_ok=True)
        for link in info.links:
            (usr_bin / link).symlink_to(f"{info.prefix}/bin/{link}")


def fix_tree(dest: Path, mtime: int) -> None:
    """Directories 0755 and every entry's mtime ``mtime``: what dpkg-deb and rpmbuild
    record does not depend on when or with which umask the bundle was built."""
    for dirpath, _dirnames, filenames in os.walk(dest, topdown=False):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
        for name in _dirnames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                os.utime(p, (mtime, mtime), follow_symlinks=False)
        os.chmod(dirpath, 0o755)
        os.utime(dirpath, (mtime, mtime))


def publish(built: Path, dest: Path) -> None:
    """Move ``built`` to ``dest`` in one rename (same file system): never a partial file."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.move(str(built), tmp)  # a rename when on the same file system
    os.replace(tmp, dest)
