"""Where a bundle keeps its interpreter: from the manifest, or guessed when it is unreadable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from isolate.model.manifest import Manifest

_STDLIB = re.compile(r"^python(\d+\.\d+)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    executable: str  # bundle-relative, e.g. "python/bin/python3.12"
    stdlib: str  # e.g. "python/lib/python3.12"
    site_packages: str
    xy: str  # "3.12"
    launcher: str = "bin/python3"

    @property
    def landmark(self) -> str:
        """The file whose presence makes CPython derive ``sys.prefix`` from where it runs."""
        return f"{self.stdlib}/os.py"


def layout_of(root: Path, manifest: Manifest | None) -> Layout | None:
    """The manifest's layout; without one, isolate's usual layout when the tree has it."""
    if manifest is not None:
        interp = manifest.interpreter
        xy = ".".join(interp.version.split(".")[:2])
        return Layout(executable=interp.executable, stdlib=interp.stdlib,
                      site_packages=interp.site_packages, xy=xy)
    found = [p for p in sorted((root / "python" / "lib").glob("python*/os.py"))
             if _STDLIB.match(p.parent.name)]
    if len(found) != 1:
        return None
    xy = _STDLIB.match(found[0].parent.name).group(1)  # type: ignore[union-attr]
    stdlib = f"python/lib/python{xy}"
    return Layout(executable=f"python/bin/python{xy}", stdlib=stdlib,
                  site_packages=f"{stdlib}/site-packages", xy=xy)
