"""The one copy of a bundle, and of its test overlay, that every cell of a matrix runs.

A matrix unpacks the bundle once (with every check of ``isolate.bundle.unpack``) into a
directory whose path has a space, rather than once per cell:

    <work>/shared/bundle root with space/<bundle>/   the runtime
    <work>/shared/overlay/                           its test overlay

Root-filesystem cells bind both read-only, at the same relative places below
``/opt/isolate``. Local cells have no sandbox to make it read-only, and their test
runners may write below the runtime (pytest's byte code of rewritten test modules), so
each runs a private copy of this layout (``Executor._prepare``). The shared copy's state
(every entry's type, mode, size and mtime) is still recorded before the cells and
compared after them (:meth:`SharedCopy.changes`): a write into it is reported, never
ignored.

The test overlay is on the path of every process the runtime starts through a ``.pth``
file in the copy's site-packages, whose line is the overlay's path *relative to*
site-packages: the same file serves the local cells and the sandboxed ones.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from isolate.bundle.unpack import unpack

SPACE_DIR = "bundle root with space"
OVERLAY_DIR = "overlay"
OVERLAY_PTH = "isolate-test-overlay.pth"  # in the matrix's copy of the runtime only

Entry = tuple[int, int, int]  # st_mode, st_size, st_mtime_ns


@dataclass(frozen=True, kw_only=True, slots=True)
class SharedCopy:
    root: Path  # <work>/shared
    top: Path  # the runtime: root / SPACE_DIR / <bundle name>
    overlay: Path | None  # root / OVERLAY_DIR, when the bundle has a test overlay
    before: Mapping[str, Entry]  # the runtime's state before any cell ran

    def changes(self) -> list[str]:
        """The runtime's paths (relative to it) that were added, removed or changed since
        the copy was made; empty when none was."""
        after = snapshot(self.top)
        return sorted(k for k in self.before.keys() | after.keys()
                      if self.before.get(k) != after.get(k))


def snapshot(top: Path) -> dict[str, Entry]:
    """Every entry below ``top``: its type and mode, size and modification time."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, top)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _place(src: Path, dest_parent: Path) -> Path:
    """Unpack an archive (or copy a directory) into ``dest_parent``; return the top dir."""
    dest_parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        top = dest_parent / src.name
        shutil.copytree(src, top, symlinks=True)
        return top
    return unpack(src, dest_parent)


def make_shared_copy(bundle: Path, overlay: Path | None, *, site_packages: str,
                     work: Path) -> SharedCopy:
    """Unpack (or copy) ``bundle`` and ``overlay`` once into ``work/shared``."""
    root = work / "shared"
    top = _place(bundle, root / SPACE_DIR)
    placed = None
    if overlay is not None:
        unpacked = _place(overlay, root / ".overlay")
        placed = root / OVERLAY_DIR
        unpacked.rename(placed)
        shutil.rmtree(root / ".overlay")
        site = top / site_packages
        relative = os.path.relpath((placed / "site-packages").resolve(), site.resolve())
        (site / OVERLAY_PTH).write_text(relative + "\n")
    return SharedCopy(root=root, top=top, overlay=placed, before=snapshot(top))
