"""Where isolate keeps what is expensive to make: tool environments, root filesystems, wheels."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def cache_root() -> Path:
    """``$ISOLATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/isolate``, else ``~/.cache/isolate``."""
    explicit = os.environ.get("ISOLATE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "isolate"


def untrusted(st: os.stat_result, what: str, kind: int) -> str | None:
    """Why a cache entry or directory with status ``st`` (from ``lstat``/``fstat``) is not
    to be trusted, or None: it must be of ``kind`` (``stat.S_IFREG``, ``stat.S_IFDIR``),
    belong to the user running isolate, and be writable by nobody else."""
    if stat.S_IFMT(st.st_mode) != kind:
        return f"{what} is not a {'directory' if kind == stat.S_IFDIR else 'regular file'}"
    if st.st_uid != os.geteuid():
        return f"{what} belongs to uid {st.st_uid}, not to the user running verify"
    if st.st_mode & 0o022:
        return f"{what} can be written by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None
