"""The one copy of a bundle, and of its test overlay, that every cell of a matrix runs.

A matrix unpacks the bundle once (with every check of ``isolate.bundle.unpack``) into a
directory whose path has a space, rather than once per cell:

    <work>/shared/bundle root with space/<bundle>/   the runtime
    <work>/shared/overlay/                           its test overlay

Root-filesystem cells bind both read-only, at the same relative places below
``/opt/isolate``. Local cells have no sandbox to make it read-only, and their test
runners may create files below the runtime (pytest's byte code of rewritten test
modules), so each runs a private copy of this layout (:meth:`SharedCopy.private_copy`,
called by ``CellRunner._prepare``): directories of its own, so that what a cell creates
stays in its copy, symlinks made again, and regular files *hard-linked* to the shared
copy's (copied only where the file system cannot link them), as writing Nova's 21,000
files again for each cell costs seconds of system time. Test runners create files and
replace them by rename, which leaves the shared copy alone; a write into a linked file
in place writes into the shared copy's file too. So the state of the shared layout
(every entry's type, mode, size and mtime, runtime and overlay) is recorded before the
cells and compared after them (:meth:`SharedCopy.changes`): a write into it, through a
link or not, is reported, never ignored.

The test overlay is on the path of every process the runtime starts through a ``.pth``
file in the copy's site-packages, whose line is the overlay's path *relative to*
site-packages: the same file serves the local cells and the sandboxed ones.
"""

from __future__ import annotations

import errno
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
    before: Mapping[str, Entry]  # the layout's state (below root) before any cell ran

    def changes(self) -> list[str]:
        """The layout's paths (relative to ``root``: the runtime's and the overlay's) that
        were added, removed or changed since the copy was made; empty when none was."""
        after = snapshot(self.root)
        return sorted(k for k in self.before.keys() | after.keys()
                      if self.before.get(k) != after.get(k))

    def private_copy(self, dest: Path) -> tuple[Path, Path | None]:
        """A copy of the layout at ``dest`` (which must not exist) for one local cell: new
        directories and symlinks, its regular files hard links to the shared copy's ones;
        return its runtime and its overlay."""
        shutil.copytree(self.root, dest, symlinks=True, copy_function=_link_or_copy)
        return (dest / self.top.relative_to(self.root),
                dest / self.overlay.relative_to(self.root) if self.overlay else None)


_CANNOT_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP})


def _link_or_copy(src: str, dest: str) -> None:
    """A hard link ``dest`` to ``src``; a copy (with its mode and times) where the file
    system cannot link them: another file system, one without hard links (EPERM), a file
    with the most links it can have."""
    try:
        os.link(src, dest)  # copytree makes symlinks itself: src is a file
    except OSError as exc:
        if exc.errno not in _CANNOT_LINK:
            raise
        shutil.copy2(src, dest)


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
    return SharedCopy(root=root, top=top, overlay=placed, before=snapshot(root))
