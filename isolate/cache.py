"""Where isolate keeps what is expensive to make: tool environments, root filesystems, wheels."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$ISOLATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/isolate``, else ``~/.cache/isolate``."""
    explicit = os.environ.get("ISOLATE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "isolate"
