"""The names and formats of bundle archives, shared by the writer and the unpacker.

An archive is ``<bundle name>.<format>``: ``tar.zst`` or ``tar.gz``; a name whose suffix
claims another format is refused on both sides. Entry times are one fixed mtime
(``default_mtime``: ``SOURCE_DATE_EPOCH`` or 1980-01-01).
"""

from __future__ import annotations

import os

from isolate.errors import InputError

FORMATS = ("tar.zst", "tar.gz")

DEFAULT_MTIME = 315532800  # 1980-01-01T00:00:00Z, the zip epoch

# Beside a bundle in the output directory: its tests overlay ``<name>.tests`` (directory,
# or ``<name>.tests.<format>``), and ``latest.txt`` naming the bundle built last.
OVERLAY_SUFFIX = ".tests"
LATEST = "latest.txt"


def overlay_name(bundle_name: str) -> str:
    """The tests overlay's name beside the bundle ``bundle_name``."""
    return bundle_name + OVERLAY_SUFFIX


# zstandard level of tar.zst: zstd's own default. Nova's runtime is 103 MB at 3 and 89 MB
# at 10, which takes about 9 times as long; the level is the builder's choice.
ZSTD_LEVEL = 3
ZSTD_LEVELS = (1, 19)

MAGIC = {b"\x28\xb5\x2f\xfd": "tar.zst", b"\x1f\x8b": "tar.gz"}
_SUFFIXES: tuple[tuple[str, str | None], ...] = (
    (".tar.zst", "tar.zst"), (".tzst", "tar.zst"), (".zst", "tar.zst"),
    (".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".gz", "tar.gz"),
    (".tar.xz", None), (".txz", None), (".xz", None), (".tar.bz2", None), (".tbz2", None),
    (".bz2", None), (".tar.lz4", None), (".lz4", None), (".tar", None), (".zip", None),
)


def archive_name(bundle_name: str, fmt: str) -> str:
    """The archive's file name: ``<bundle_name>.<fmt>``."""
    check_format(fmt)
    return f"{bundle_name}.{fmt}"


def default_mtime() -> int:
    """``SOURCE_DATE_EPOCH`` when set to a non-negative integer, else 1980-01-01."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isascii() and value.isdigit() and int(value) < 8**11:
        return int(value)
    return DEFAULT_MTIME


def claimed_format(name: str) -> tuple[str, str | None]:
    """The archive suffix of a file name and the format it claims ("", None: no suffix)."""
    lower = name.lower()
    return next(((sfx, fmt) for sfx, fmt in _SUFFIXES if lower.endswith(sfx)), ("", None))


def check_format(fmt: str) -> None:
    """``InputError`` unless ``fmt`` is one of ``FORMATS``."""
    if fmt not in FORMATS:
        raise InputError(f"unknown archive format {fmt!r}",
                         hint=f"use one of: {', '.join(FORMATS)}")
