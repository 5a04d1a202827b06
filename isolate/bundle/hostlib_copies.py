"""Copies of host libraries inside a runtime: what must never be there.

A library declared host-provided (``[[host_libraries]]``) must come from the host; a
wheel that vendors a copy anyway (auditwheel puts it in ``<package>.libs/``, renamed
``libvirt-1a2b3c4d.so.0.7000.0``) would shadow the host's and talk to its daemon with the
wrong client. ``vendored_copies`` finds them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

# auditwheel's renaming: the soname's stem, "-" and 8 hex digits, then ".so..."
_HASHED = re.compile(r"-[0-9a-f]{8}(?=\.so(\.|$))")


def copy_of(name: str, soname: str) -> bool:
    """True when a file called ``name`` is a (possibly renamed) copy of ``soname``."""
    plain = _HASHED.sub("", name, count=1)
    return plain == soname or plain.startswith(soname + ".")


def vendored_copies(root: Path, sonames: Iterable[str]) -> list[tuple[str, str]]:
    """``(bundle-relative file, soname)`` for each copy of a host library inside any
    ``*.libs`` directory below ``root``, sorted."""
    wanted = sorted(set(sonames))
    found: list[tuple[str, str]] = []
    if not wanted:
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if not dirpath.endswith(".libs"):
            continue
        for name in sorted(filenames):
            for soname in wanted:
                if copy_of(name, soname):
                    found.append(((Path(dirpath) / name).relative_to(root).as_posix(), soname))
    return found
