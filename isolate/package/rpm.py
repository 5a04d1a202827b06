"""The .rpm of a bundle, built with ``rpmbuild`` (Debian's ``rpm`` package works).

The spec file only copies the staged tree into the build root: no build, no
``__os_install_post`` (no stripping, no byte compiling, no shebang mangling), no
automatic dependencies (``AutoReqProv: no``; ``Requires`` and ``Recommends`` come from
isolate.package.depends), no debug package. Reproducible: SOURCE_DATE_EPOCH is the build
time and clamps every mtime, the build host is fixed, the payload is xz (single thread).
"""

from __future__ import annotations

import time
from pathlib import Path

from isolate.package.depends import host_packages
from isolate.package.names import rpm_epoch_version
from isolate.package.payload import PackageInfo, fix_tree, publish, stage
from isolate.proc import Runner, clean_env

# xz level 6 in liblzma's multi-threaded encoder. Its output depends on the block size (set
# by the level), not on the thread count; but rpm writes the flags ("6T4") into the header
# (PAYLOADFLAGS), so the count is a constant, not this machine's cores; and not one, which
# picks the single-threaded encoder.
RPM_XZ_THREADS = 4
RPM_DEFINES = {
    "_binary_payload": f"w6T{RPM_XZ_THREADS}.xzdio",
    "debug_package": "%{nil}",
    "__spec_install_post": "%{nil}",
    "__os_install_post": "%{nil}",
    "_build_id_links": "none",
    "_buildhost": "isolate",
    "use_source_date_epoch_as_buildtime": "1",
    "clamp_mtime_to_source_date_epoch": "1",
    "_unpackaged_files_terminate_build": "1",
}


def rpm_filename(info: PackageInfo) -> str:
    _epoch, version = rpm_epoch_version(info.version)
    return f"{info.name}-{version}-{info.release}.{info.arch}.rpm"


def _quote(path: str) -> str:
    return '"' + path.replace('"', '\\"') + '"'


def spec(info: PackageInfo, image: Path) -> str:
    epoch, version = rpm_epoch_version(info.version)
    floor = info.glibc_floor
    deps = host_packages(info, "rpm", libc=f"glibc >= {floor}" if floor else "glibc")
    head = [f"Name: {info.name}", f"Version: {version}", f"Release: {info.release}",
            *([f"Epoch: {epoch}"] if epoch else []),
            f"Summary: {info.summary}", f"License: {info.license}",
            *([f"URL: {info.homepage}"] if info.homepage else []),
            f"Packager: {info.maintainer}", "AutoReqProv: no",
            *(f"Requires: {r}" for r in deps.requires),
            *(f"Recommends: {r}" for r in deps.recommends)]
    date = time.strftime("%a %b %d %Y", time.gmtime(info.mtime))
    files = [_quote(info.prefix), *(_quote(f"/usr/bin/{link}") for link in info.links)]
    return "\n".join([
        *head, "",
        "%description", info.description, "",
        "%install", f"cp -a {_quote(str(image))}/. %{{buildroot}}/", "",
        "%files", "%defattr(-,root,root,-)", *files, "",
        "%changelog",
        f"* {date} {info.maintainer} - {version}-{info.release}",
        f"- Runtime {info.manifest_name}, built by isolate {info.tool_version}",
        f"  from the lock with sha256 {info.lock_sha256[:16]}.", ""])


def build_rpm(root: Path, out_dir: Path, info: PackageInfo, *, work: Path,
              runner: Runner) -> Path:
    """``out_dir/<name>-<version>-<release>.<arch>.rpm`` from the bundle at ``root``."""
    image = work / "rpm-image"
    stage(root, image, info)
    fix_tree(image, info.mtime)
    top = work / "rpmbuild"
    top.mkdir()
    spec_path = top / f"{info.name}.spec"
    spec_path.write_text(spec(info, image))
    argv: list[str | Path] = ["rpmbuild", "-bb", "--target", info.arch,
                              "--define", f"_topdir {top}", "--define", f"_rpmdir {top}/RPMS",
                              "--define", f"_tmppath {top}/tmp",
                              "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}."
                                          "%%{ARCH}.rpm"]
    for k, v in RPM_DEFINES.items():
        argv += ["--define", f"{k} {v}"]
    (top / "tmp").mkdir()
    runner.run([*argv, spec_path], cwd=top,
               env=clean_env({"SOURCE_DATE_EPOCH": str(info.mtime), "TZ": "UTC"}),
               timeout=3600, what="rpmbuild -bb")
    (built,) = (top / "RPMS").iterdir()
    dest = out_dir / rpm_filename(info)
    publish(built, dest)
    return dest
