"""The manifest's own sha256, recorded outside the bundle: where it is, and whether it matches.

The integrity check trusts the manifest's file list, so whoever edits a file and its
manifest entry together passes it. ``isolate bundle`` therefore records the manifest's
sha256 outside the bundle, in ``<out>/<name>.isolate-manifest.json.sha256`` (sha256sum
format). ``locate`` finds the expected hash, in this order:

1. ``--manifest-sha256 HEX``, when given: it is always checked, and wins.
2. An archive with ``<archive>.sha256`` beside it: ``archive.unpack`` checked the whole
   archive against it before reading anything, which covers the manifest.
3. ``<bundle dir>.isolate-manifest.json.sha256`` beside a bundle directory; for an archive
   without its own ``.sha256``, ``<top-level name>.isolate-manifest.json.sha256`` beside
   the archive (``isolate bundle`` writes both into its output directory).

``check`` compares: a mismatch, or a recorded hash that cannot be read, is an error; no
recorded hash at all is a note saying the manifest's integrity cannot be checked.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

from isolate.errors import InputError
from isolate.model.manifest import MANIFEST_NAME
from isolate.verify.report import ERROR, MANIFEST, NOTE, Finding

SIDECAR_SUFFIX = f".{MANIFEST_NAME}.sha256"
OPTION = "--manifest-sha256"
_HEX = frozenset(string.hexdigits.lower())


def sidecar_of(bundle_dir: Path) -> Path:
    """Where ``isolate bundle`` records the manifest's sha256 for ``bundle_dir``."""
    return bundle_dir.with_name(bundle_dir.name + SIDECAR_SUFFIX)


def parse_hex(text: str) -> str | None:
    """The lower-case hex digest of a sha256 (``HEX``, ``sha256:HEX``, or a sha256sum line's
    first word); None when ``text`` is not one."""
    words = text.split()
    word = words[0].lower() if words else ""
    word = word.removeprefix("sha256:")
    return word if len(word) == 64 and set(word) <= _HEX else None


def given_hex(value: str) -> str:
    """``--manifest-sha256``'s value, checked: ``InputError`` when it is not a sha256."""
    digest = parse_hex(value) if len(value.split()) == 1 else None
    if digest is None:
        raise InputError(f"{OPTION} {value!r} is not a sha256 (64 hex digits)",
                         hint=f"pass the first word of the bundle's {SIDECAR_SUFFIX[1:]} file")
    return digest


@dataclass(frozen=True, kw_only=True, slots=True)
class Expected:
    """What the manifest's sha256 must be, and who says so."""

    sha256: str | None  # None: nothing records it (see ``covered_by``, ``problem``, ``looked``)
    source: str = ""  # "--manifest-sha256" or the sidecar's path
    covered_by: str | None = None  # an archive sidecar that vouched for the whole archive
    problem: str | None = None  # a sidecar that exists but cannot be read or parsed
    looked: str | None = None  # where a sidecar was looked for, when none was found


def _read_sidecar(sidecar: Path) -> Expected:
    try:
        with open(sidecar, "rb") as f:
            text = f.read(4096).decode("ascii", "replace")
    except OSError as exc:
        return Expected(sha256=None, source=str(sidecar),
                        problem=f"{sidecar} cannot be read: {exc.strerror}")
    digest = parse_hex(text)
    if digest is None:
        return Expected(sha256=None, source=str(sidecar),
                        problem=f"{sidecar} is not a sha256sum file")
    return Expected(sha256=digest, source=str(sidecar))


def locate(path: Path, root: Path, *, given: str | None) -> Expected:
    """The expected sha256 of the manifest of the bundle ``path`` (a directory, or an
    archive unpacked to ``root``); ``given`` is a checked ``--manifest-sha256``."""
    if given is not None:
        return Expected(sha256=given, source=OPTION)
    if path.is_dir():
        sidecar = sidecar_of(path)
    else:
        archive_sidecar = path.with_name(path.name + ".sha256")
        if archive_sidecar.is_file():  # archive.unpack checked it before reading a byte
            return Expected(sha256=None, covered_by=str(archive_sidecar))
        sidecar = path.with_name(root.name + SIDECAR_SUFFIX)
    if not sidecar.exists() and not sidecar.is_symlink():
        return Expected(sha256=None, looked=str(sidecar))
    return _read_sidecar(sidecar)


def check(data: bytes, expected: Expected) -> tuple[list[Finding], str]:
    """(findings, a one-line summary) for the manifest's bytes ``data``."""
    actual = hashlib.sha256(data).hexdigest()
    if expected.sha256 is not None:
        if actual == expected.sha256:
            return [], f"sha256 matches {expected.source}"
        return [Finding(severity=ERROR, check=MANIFEST, path=MANIFEST_NAME, message=(
            f"changed after the build: its sha256 is {actual}, but {expected.source} records "
            f"{expected.sha256}; the file list it vouches for cannot be trusted"))], \
            f"sha256 differs from {expected.source}"
    if expected.covered_by is not None:
        return [], f"covered by {expected.covered_by}"
    if expected.problem is not None:
        return [Finding(severity=ERROR, check=MANIFEST, path=MANIFEST_NAME, message=(
            f"its own integrity cannot be checked: {expected.problem}; restore that file "
            f"from the build's output directory, or pass {OPTION} HEX"))], \
            "recorded sha256 unreadable"
    return [Finding(severity=NOTE, check=MANIFEST, path=MANIFEST_NAME, message=(
        f"its own integrity cannot be checked: no {expected.looked} records its sha256, so an "
        "edited manifest would go unnoticed; copy that file from the output directory of "
        f"`isolate bundle` beside the bundle, verify the bundle's archive with its .sha256, or "
        f"pass {OPTION} HEX"))], "sha256 not recorded outside the bundle"
