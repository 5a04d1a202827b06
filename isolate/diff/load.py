"""Open a bundle in any of its forms and read its manifest and its distributions' RECORDs.

A bundle is a directory holding ``isolate-manifest.json``, a ``.tar.zst``/``.tar.gz``
archive of one, the manifest itself, or a ``.deb``/``.rpm`` made by isolate. Archives and
packages are read as streams (nothing is extracted to disk); only the manifest and the
``*.dist-info/RECORD`` members are kept, to say which distribution owns which file.
"""

from __future__ import annotations

import csv
import gzip
import io
import lzma
import posixpath
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import zstandard
from packaging.utils import canonicalize_name

from isolate.errors import InputError
from isolate.model.manifest import MANIFEST_NAME, Manifest, ManifestError

_NOT_A_BUNDLE = ("give a bundle directory (with isolate-manifest.json), its .tar.zst or "
                 ".tar.gz archive, its manifest, or a .deb/.rpm made by `isolate bundle`")


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleView:
    path: Path
    form: str  # "directory", "tar.zst archive", "tar.gz archive", "manifest", ".deb", ".rpm"
    manifest: Manifest
    owners: Mapping[str, str]  # bundle-relative path -> canonical distribution name


def _not_a_bundle(path: Path, what: str) -> InputError:
    return InputError(f"{path} is not a bundle: {what}", hint=_NOT_A_BUNDLE)


def _manifest(path: Path, text: bytes, form: str) -> Manifest:
    try:
        return Manifest.loads(text.decode("utf-8", "replace"))
    except ManifestError as exc:
        raise _not_a_bundle(path, f"its {MANIFEST_NAME} ({form}) is not an isolate "
                                  f"manifest: {exc}") from exc


def _owners(site_packages: str, records: Mapping[str, bytes]) -> dict[str, str]:
    """``records``: bundle-relative path of each RECORD -> its content."""
    owners: dict[str, str] = {}
    for rec_path, content in records.items():
        dist_info = posixpath.basename(posixpath.dirname(rec_path))
        owner = canonicalize_name(dist_info.removesuffix(".dist-info").rsplit("-", 1)[0])
        for row in csv.reader(io.StringIO(content.decode("utf-8", "replace"))):
            if row:
                owners[posixpath.normpath(posixpath.join(site_packages, row[0]))] = owner
    return owners


def _view(path: Path, form: str, members: Iterator[tuple[str, IO[bytes]]]) -> BundleView:
    """From (name, reader) pairs of an archive: the shallowest manifest and the RECORDs."""
    manifests: dict[str, bytes] = {}
    records: dict[str, bytes] = {}
    for name, reader in members:
        clean = name.removeprefix("./").strip("/")
        if clean.endswith("/" + MANIFEST_NAME) or clean == MANIFEST_NAME:
            manifests[clean] = reader.read(64 << 20)
        elif clean.endswith(".dist-info/RECORD"):
            records[clean] = reader.read(64 << 20)
    if not manifests:
        raise _not_a_bundle(path, f"this {form} holds no {MANIFEST_NAME}; it was not made "
                                  "by `isolate bundle`")
    where = min(manifests, key=lambda n: (n.count("/"), n))
    root = posixpath.dirname(where)
    manifest = _manifest(path, manifests[where], form)
    prefix = root + "/" if root else ""
    mine = {k[len(prefix):]: v for k, v in records.items() if k.startswith(prefix)}
    return BundleView(path=path, form=form, manifest=manifest,
                      owners=_owners(manifest.interpreter.site_packages, mine))


def _tar_members(stream: IO[bytes]) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for ti in tf:
                if ti.isfile():
                    f = tf.extractfile(ti)
                    if f is not None:
                        yield ti.name, f
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError,
            zstandard.ZstdError) as exc:
        raise InputError(f"cannot read the archive: {exc}",
                         hint="the file is truncated or corrupt; build it again") from exc


def _decompress(f: IO[bytes], head: bytes) -> IO[bytes]:
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(
            f, read_across_frames=True))  # isolate writes many frames
    if head.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=f))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(IO[bytes], lzma.LZMAFile(f))
    return f


def _ar_data(f: IO[bytes], path: Path) -> IO[bytes]:
    """The ``data.tar.*`` member of a .deb (an ar archive), decompressed."""
    f.seek(8)
    while True:
        header = f.read(60)
        if len(header) < 60:
            raise _not_a_bundle(path, "this .deb has no data.tar member")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith("data.tar"):
            # streamed: the tar reader stops at its end-of-archive blocks
            head = f.read(6)
            f.seek(-len(head), io.SEEK_CUR)
            return _decompress(f, head)
        f.seek(size + size % 2, io.SEEK_CUR)


def _rpm_payload(f: IO[bytes], path: Path) -> IO[bytes]:
    """The cpio payload of an .rpm, decompressed: skip the lead and both headers."""
    f.seek(96)
    for padded in (True, False):
        magic = f.read(16)
        if magic[:3] != b"\x8e\xad\xe8":
            raise _not_a_bundle(path, "its RPM header is damaged")
        count, size = int.from_bytes(magic[8:12], "big"), int.from_bytes(magic[12:16], "big")
        skip = 16 * count + size
        if padded:
            skip += -skip % 8
        f.seek(skip, io.SEEK_CUR)
    head = f.read(6)
    f.seek(-len(head), io.SEEK_CUR)
    return _decompress(f, head)


def _cpio_members(stream: IO[bytes]) -> Iterator[tuple[str, IO[bytes]]]:
    """Entries of a cpio "newc" stream (RPM payloads)."""
    while True:
        header = stream.read(110)
        if len(header) < 110 or header[:6] not in (b"070701", b"070702"):
            return
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name = stream.read(namesize)[:-1].decode("utf-8", "replace")
        stream.read(-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return
        data = stream.read(filesize)
        stream.read(-filesize % 4)
        if mode & 0o170000 == 0o100000:
            yield name, io.BytesIO(data)


def _directory(path: Path) -> BundleView:
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise _not_a_bundle(path, f"a directory without {MANIFEST_NAME}")
    manifest = _manifest(path, manifest_path.read_bytes(), "directory")
    site = path / manifest.interpreter.site_packages
    records = {p.relative_to(path).as_posix(): p.read_bytes()
               for p in sorted(site.glob("*.dist-info/RECORD"))} if site.is_dir() else {}
    return BundleView(path=path, form="directory", manifest=manifest,
                      owners=_owners(manifest.interpreter.site_packages, records))


def open_bundle(path: Path) -> BundleView:
    """The bundle at ``path`` in any of its forms; ``InputError`` saying what it is not."""
    if path.is_dir():
        return _directory(path)
    if not path.exists():
        raise InputError(f"{path} does not exist", hint=_NOT_A_BUNDLE)
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if head.startswith(b"!<arch>\n"):
                return _view(path, ".deb", _tar_members(_ar_data(f, path)))
            if head.startswith(b"\xed\xab\xee\xdb"):
                return _view(path, ".rpm", _cpio_members(_rpm_payload(f, path)))
            if head.startswith((b"\x28\xb5\x2f\xfd", b"\x1f\x8b")):
                f.seek(0)
                form = "tar.zst archive" if head[0] == 0x28 else "tar.gz archive"
                return _view(path, form, _tar_members(_decompress(f, head)))
            if head.lstrip()[:1] == b"{":
                f.seek(0)
                text = f.read(256 << 20)
                return BundleView(path=path, form="manifest",
                                  manifest=_manifest(path, text, "manifest"), owners={})
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}",
                         hint="check the path and its permissions") from exc
    raise _not_a_bundle(path, "neither a bundle directory, a bundle archive (.tar.zst, "
                              ".tar.gz), a manifest (JSON), nor a .deb or .rpm")
