"""A CycloneDX 1.6 JSON SBOM of a bundle, made from its manifest alone.

``build_sbom(path)`` reads the manifest of a bundle directory, of a bundle archive
(unpacked safely into a temporary directory, its ``.sha256`` checked when present) or the
``isolate-manifest.json`` file itself, and returns the document; ``write_sbom`` also
writes it atomically. The document is made with ``cyclonedx-python-lib``, whose types stay
inside this module.

What it lists:

- metadata component: the bundle (type application, its name and the application's
  version), with the manifest's sha256, runtime, platform and lock hash as properties;
- every installed distribution: type library, ``pkg:pypi/NAME@VERSION``, the sha256 of
  the wheel installed (and of the sdist it was built from, as a property);
- the CPython interpreter: type platform (a runtime that executes the software),
  ``pkg:generic/cpython@VERSION``, the sha256 of the bundled executable, its source;
- every vendored shared library: type library, named by its soname, the sha256 of the
  file from the manifest's file list, its bundle path and build-host origin as properties.

The same manifest always gives the same bytes: the serial number is a UUID5 of the
manifest's sha256, the timestamp is ``SOURCE_DATE_EPOCH`` or else 1980-01-01 (the rule the
archives' entry times follow, ``isolate.bundle.archive_format.default_mtime``), every
``bom-ref`` is derived from the manifest, and the library sorts components and keys.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from isolate import __version__
from isolate.bundle.archive_format import default_mtime
from isolate.bundle.unpack import unpack
from isolate.errors import InputError
from isolate.fsutil import temp_dir, write_atomic
from isolate.model.manifest import MANIFEST_NAME, Manifest, ManifestError

SPEC_VERSION = "1.6"
# The namespace of the serial numbers: uuid5(NAMESPACE, manifest sha256).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://isolate.invalid/sbom")
_PROP = "isolate:"
_HINT = ("give a bundle directory (the one holding isolate-manifest.json), its archive "
         "(.tar.zst, .tar.gz) or the manifest file")


@dataclass(frozen=True, kw_only=True, slots=True)
class Sbom:
    """A rendered SBOM and what it holds."""

    bundle: str  # the bundle's name
    spec_version: str  # "1.6"
    serial_number: str  # "urn:uuid:..."
    components: int
    text: str  # the JSON document, ending with a newline


def pypi_purl_name(name: str) -> str:
    """A distribution name as the purl spec wants it for pypi: lower case, ``_`` as ``-``."""
    return name.lower().replace("_", "-")


def _sha256(digest: str) -> list[HashType]:
    return [HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else []


def _props(pairs: Iterable[tuple[str, str | None]]) -> list[Property]:
    return [Property(name=_PROP + k, value=v) for k, v in pairs if v]


def _components(m: Manifest) -> list[Component]:
    files = {e.path: e for e in m.files}
    out: list[Component] = []
    for d in m.distributions:
        purl = PackageURL(type="pypi", name=pypi_purl_name(d.name), version=d.version)
        out.append(Component(
            type=ComponentType.LIBRARY, name=d.name, version=d.version, purl=purl,
            bom_ref=purl.to_string(), hashes=_sha256(d.sha256),
            properties=_props([("filename", d.filename),
                               ("built_from_sdist_sha256", d.built_from_sdist)])))
    interp = m.interpreter
    purl = PackageURL(type="generic", name="cpython", version=interp.version)
    exe = files.get(interp.executable)
    out.append(Component(
        type=ComponentType.PLATFORM, name="cpython", version=interp.version, purl=purl,
        bom_ref=purl.to_string(), hashes=_sha256(exe.sha256 if exe else ""),
        properties=_props([("path", interp.executable), ("source", interp.source)])))
    for v in m.elf.vendored:
        entry = files.get(v.path)
        out.append(Component(
            type=ComponentType.LIBRARY, name=v.soname, bom_ref=f"{_PROP}vendored:{v.path}",
            hashes=_sha256(entry.sha256 if entry else ""),
            properties=_props([("path", v.path), ("origin", v.origin),
                               ("needed_by", ", ".join(v.needed_by))])))
    return out


def render(manifest_bytes: bytes) -> Sbom:
    """The SBOM of the bundle whose manifest is ``manifest_bytes``."""
    try:
        m = Manifest.loads(manifest_bytes)
    except ManifestError as exc:
        raise InputError(f"{MANIFEST_NAME} cannot be read: {exc}",
                         hint="rebuild the bundle with `isolate bundle`") from exc
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    root = Component(
        type=ComponentType.APPLICATION, name=m.name, version=m.version, bom_ref=m.name,
        properties=_props([("manifest_sha256", digest), ("runtime", m.runtime),
                           ("platform", m.platform), ("python_tag", m.python_tag),
                           ("arch", m.arch), ("glibc_floor", m.elf.glibc_floor),
                           ("lock_sha256", m.lock_sha256), ("built_by", m.tool_version)]))
    serial = uuid.uuid5(NAMESPACE, digest)
    bom = Bom(serial_number=serial)
    bom.metadata.component = root
    bom.metadata.timestamp = datetime.fromtimestamp(default_mtime(), tz=timezone.utc)
    bom.metadata.tools.components.add(Component(
        type=ComponentType.APPLICATION, name="isolate", version=__version__,
        bom_ref=f"{_PROP}tool"))
    components = _components(m)
    for c in components:
        bom.components.add(c)
    bom.register_dependency(root, components)
    text = JsonV1Dot6(bom).output_as_string(indent=2) + "\n"
    return Sbom(bundle=m.name, spec_version=SPEC_VERSION, serial_number=serial.urn,
                components=len(components), text=text)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", hint=_HINT) from exc


def build_sbom(path: Path) -> Sbom:
    """The SBOM of the bundle directory, bundle archive or manifest file at ``path``."""
    if path.is_dir():
        manifest = path / MANIFEST_NAME
        if not manifest.is_file():
            raise InputError(f"{path} is not an isolate bundle: it has no {MANIFEST_NAME}",
                             hint=_HINT)
        return render(_read(manifest, str(manifest)))
    if not path.is_file():
        raise InputError(f"{path}: no such file or directory", hint=_HINT)
    if path.name == MANIFEST_NAME:
        return render(_read(path, str(path)))
    with temp_dir(prefix="isolate-sbom-") as tmp:
        top = unpack(path, tmp)
        manifest = top / MANIFEST_NAME
        if not manifest.is_file():
            raise InputError(f"{path} is not an isolate bundle archive: it has no "
                             f"{top.name}/{MANIFEST_NAME}", hint=_HINT)
        return render(_read(manifest, f"{MANIFEST_NAME} in {path}"))


def write_sbom(path: Path, dest: Path) -> Sbom:
    """``build_sbom(path)``, written to ``dest`` atomically."""
    sbom = build_sbom(path)
    try:
        write_atomic(dest, sbom.text)
    except OSError as exc:
        raise InputError(f"cannot write {dest}: {exc.strerror}",
                         hint="choose a file in a directory you can write to, with free "
                              "space") from exc
    return sbom


__all__ = ["SPEC_VERSION", "Sbom", "build_sbom", "render", "write_sbom"]
