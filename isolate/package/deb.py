"""The .deb of a bundle, built with ``dpkg-deb``.

The bundle is staged below its prefix with ``usr/share/doc/<name>/{copyright,
changelog.Debian.gz}`` and ``usr/share/lintian/overrides/<name>`` (each override is
justified in ``lintian-overrides``, next to this module), every mtime set to
SOURCE_DATE_EPOCH; ``dpkg-deb --root-owner-group`` writes sorted entries owned by root.
No maintainer scripts: the runtime ships its byte code, nothing runs at install time.
"""

from __future__ import annotations

import gzip
import io
import os
from email.utils import formatdate
from importlib import resources
from pathlib import Path

from isolate.package.depends import host_packages
from isolate.package.names import DEBIAN_ARCH
from isolate.package.payload import PackageInfo, fix_tree, publish, stage
from isolate.proc import Runner, clean_env


def deb_version(info: PackageInfo) -> str:
    return f"{info.version}-{info.release}"


def deb_filename(info: PackageInfo) -> str:
    version = deb_version(info).split(":", 1)[-1]  # the epoch is not in file names
    return f"{info.name}_{version}_{DEBIAN_ARCH[info.arch]}.deb"


def _installed_size(root: Path) -> int:
    """In KiB, as dpkg-gencontrol counts: each file rounded up, 1 per directory or link."""
    total = 0
    for p in root.rglob("*"):
        if p.is_symlink() or p.is_dir():
            total += 1
        else:
            total += (p.stat().st_size + 1023) // 1024
    return total


def _wrap(text: str, width: int = 78) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def control(info: PackageInfo, installed_size: int) -> str:
    floor = info.glibc_floor
    deps = host_packages(info, "deb", libc=f"libc6 (>= {floor})" if floor else "libc6")
    fields = [
        ("Package", info.name),
        ("Version", deb_version(info)),
        ("Architecture", DEBIAN_ARCH[info.arch]),
        ("Maintainer", info.maintainer),
        ("Installed-Size", str(installed_size)),
        ("Depends", ", ".join(deps.requires)),
        ("Recommends", ", ".join(deps.recommends)),
        ("Section", info.section),
        ("Priority", "optional"),
        ("Homepage", info.homepage or ""),
    ]
    body = "".join(f"{k}: {v}\n" for k, v in fields if v)
    long = "\n".join(f" {line}" for line in _wrap(info.description))
    return body + f"Description: {info.summary}\n{long}\n"


def copyright_text(info: PackageInfo) -> str:
    return (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {info.name}\n"
        "Comment: A runtime built by isolate from pinned distributions. Each\n"
        " distribution's own copyright and license files are installed with it, in\n"
        f" its .dist-info directory below {info.prefix}; the list of distributions,\n"
        f" with versions and hashes, is {info.prefix}/isolate-manifest.json.\n"
        "\n"
        "Files: *\n"
        f"Copyright: (c) the authors of {info.name} and of the distributions it bundles\n"
        f"License: {info.license}\n"
        f" The license of {info.name}; see each bundled distribution's own license.\n"
    )


def changelog_gz(info: PackageInfo) -> bytes:
    date = formatdate(info.mtime, usegmt=False).replace("-0000", "+0000")
    text = (f"{info.name} ({deb_version(info)}) unstable; urgency=medium\n\n"
            f"  * Runtime {info.manifest_name}, built by isolate {info.tool_version}\n"
            f"    from the lock with sha256 {info.lock_sha256[:16]}.\n\n"
            f" -- {info.maintainer}  {date}\n")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode())
    return buf.getvalue()


def lintian_overrides(info: PackageInfo) -> str:
    """The shipped overrides: the justified template, with the package's name."""
    template = resources.files("isolate.package").joinpath("lintian-overrides").read_text()
    return template.replace("@PACKAGE@", info.name)


def build_deb(root: Path, out_dir: Path, info: PackageInfo, *, work: Path,
              runner: Runner) -> Path:
    """``out_dir/<name>_<version>_<arch>.deb`` from the bundle at ``root``; its path."""
    image = work / "deb"
    stage(root, image, info)
    doc = image / "usr/share/doc" / info.name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text(info))
    (doc / "changelog.Debian.gz").write_bytes(changelog_gz(info))
    overrides = image / "usr/share/lintian/overrides"
    overrides.mkdir(parents=True)
    (overrides / info.name).write_text(lintian_overrides(info))
    for f in (doc / "copyright", doc / "changelog.Debian.gz", overrides / info.name):
        f.chmod(0o644)
    size = _installed_size(image)
    (image / "DEBIAN").mkdir()
    (image / "DEBIAN" / "control").write_text(control(info, size))
    (image / "DEBIAN" / "control").chmod(0o644)
    fix_tree(image, info.mtime)
    built = work / deb_filename(info)
    # dpkg-deb always uses liblzma's multi-threaded encoder, whose output depends on the
    # block size (set by the level), not on the thread count: every core, same bytes.
    runner.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z6",
                f"--threads-max={os.cpu_count() or 1}",
                "--build", image, built],
               env=clean_env({"SOURCE_DATE_EPOCH": str(info.mtime)}), timeout=3600,
               what="dpkg-deb --build")
    dest = out_dir / deb_filename(info)
    publish(built, dest)
    return dest
