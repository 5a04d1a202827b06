"""The rules of a bundle's tree, written once for the writer and every reader.

``isolate bundle`` writes a tree by these rules; ``verify``, the archive writer, the
unpacker and the ELF closure read or enforce the same ones, so they import them from
here rather than keep a copy:

- layout: the build marker every build directory's name holds (the relocation audit
  looks for it) and where vendored libraries go;
- entries: a bundle holds regular files, directories and relative symlinks that stay
  inside it; anything else is a *special* file, named by ``special_kind``;
- modes: directories 0755, files 0755 when any execute bit is set and 0644 otherwise,
  symlinks 0777;
- digests: a file's sha256 is that of its content, a symlink's that of its target text;
- ``$ORIGIN``: the only RPATH entries a relocatable file may carry, how they are written
  and how they expand;
- inside the root: whether a path, a symlink target or a bundle-relative directory
  stays inside the bundle.

Pure functions over strings and modes: no I/O but ``os.path.realpath`` in
``resolves_within``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence

# -- layout

BUILD_MARKER = ".isolate-build-"  # every build directory's name starts with it
VENDORED_LIB_DIR = "lib"  # bundle-relative directory of vendored shared libraries

# -- modes

DIR_MODE = 0o755
EXEC_MODE = 0o755
FILE_MODE = 0o644
LINK_MODE = 0o777


def file_mode(executable: bool) -> int:
    """The mode a regular file has in a bundle: 0755 when executable, else 0644."""
    return EXEC_MODE if executable else FILE_MODE


def normal_mode(st_mode: int) -> int:
    """The bundle mode of a regular file whose current mode is ``st_mode``: executable
    when any execute bit is set (no group/world write, no setuid, setgid or sticky)."""
    return file_mode(bool(st_mode & 0o111))


# -- entries

FILE = "file"
SYMLINK = "symlink"
SPECIAL = "special"


def special_kind(st_mode: int) -> str:
    """What a non-file, non-directory, non-symlink entry is, in words."""
    if stat.S_ISFIFO(st_mode):
        return "FIFO"
    if stat.S_ISSOCK(st_mode):
        return "socket"
    if stat.S_ISCHR(st_mode) or stat.S_ISBLK(st_mode):
        return "device node"
    return "special file"


# -- digests


def _link_bytes(target: str) -> bytes:
    return target.encode("utf-8", "surrogateescape")


def link_sha256(target: str) -> str:
    """A symlink's digest: the sha256 of its target text."""
    return hashlib.sha256(_link_bytes(target)).hexdigest()


def link_size(target: str) -> int:
    """A symlink's size: the length of its target text in bytes."""
    return len(_link_bytes(target))


# -- $ORIGIN

_ORIGIN = re.compile(r"^\$(?:ORIGIN|\{ORIGIN\})(?=/|$)")


def is_origin_relative(entry: str) -> bool:
    """Whether an RPATH/RUNPATH entry starts with ``$ORIGIN`` (or ``${ORIGIN}``)."""
    return _ORIGIN.match(entry) is not None


def expand_origin(entry: str, directory: str) -> str | None:
    """An ``$ORIGIN`` entry of a file in ``directory``, expanded and normalised (absolute
    or relative as ``directory`` is; a relative result may start with ``..``); None when
    the entry is not ``$ORIGIN``-relative."""
    m = _ORIGIN.match(entry)
    if m is None:
        return None
    rest = entry[m.end():].lstrip("/")
    return posixpath.normpath(posixpath.join(directory, rest))


def origin_entry(file_dir: str, dep_dir: str) -> str:
    """The RPATH entry with which a file in ``file_dir`` finds libraries in ``dep_dir``."""
    rel = posixpath.relpath(dep_dir, file_dir)
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


# -- inside the root


def within(path: str, root: str) -> bool:
    """Whether the normalised path ``path`` is ``root`` or below it (lexically)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolves_within(path: str, root_real: str) -> bool:
    """Whether ``path``, with every symlink resolved, is inside ``root_real`` (a real path)."""
    return within(os.path.realpath(path), root_real)


def leaves_root(rel: str) -> bool:
    """Whether a normalised bundle-relative path climbs out of the bundle."""
    return rel == ".." or rel.startswith("../")


def link_escapes(parent: Sequence[str], target: str) -> bool:
    """Whether the symlink target ``target``, read from the directory ``parent`` (its
    components below the root), ever leaves the root."""
    parts = list(parent)
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                return True
            parts.pop()
        else:
            parts.append(comp)
    return False


OUTSIDE = "outside"  # ``resolve``: the path leaves the root
LOOP = "loop"  # ``resolve``: too many symlinks (a loop)
_MAX_LINKS = 40  # as Linux's MAXSYMLINKS


def resolve(rel: str, links: Mapping[str, str]) -> tuple[str | None, str]:
    """``rel`` (a root-relative path) with every symlink among ``links`` (root-relative
    path -> target) resolved, lexically, as ``realpath`` would in a tree holding them:
    (the resolved root-relative path, "") or (None, ``OUTSIDE`` | ``LOOP``). An absolute
    target leaves the root."""
    done: list[str] = []
    todo = list(reversed(rel.split("/")))
    hops = 0
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if not done:
                return None, OUTSIDE
            done.pop()
            continue
        here = "/".join((*done, comp))
        target = links.get(here)
        if target is None:
            done.append(comp)
            continue
        hops += 1
        if hops > _MAX_LINKS:
            return None, LOOP
        if target.startswith("/"):
            return None, OUTSIDE
        todo.extend(reversed(target.split("/")))
    return "/".join(done), ""
