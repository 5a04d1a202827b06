"""Install locked wheels into the bundled interpreter's own site-packages.

Not a venv (a venv cannot move). Console scripts become relocatable launchers next to
the interpreter; the exposed ones also get a launcher in the bundle's ``bin/``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, BinaryIO
from zipfile import BadZipFile

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import RecordEntry
from installer.sources import WheelFile
from installer.utils import Scheme
from packaging.utils import canonicalize_name

from isolate.bundle.launchers import script_launcher
from isolate.errors import InputError


@dataclass(frozen=True, kw_only=True, slots=True)
class Installed:
    name: str  # canonical
    version: str
    console_scripts: tuple[tuple[str, str, str], ...]  # (name, module, attr)
    files: tuple[str, ...] = ()  # every file installing the wheel wrote (absolute paths)


class _Destination(SchemeDictionaryDestination):
    """installer's destination, with isolate's launchers instead of shebang scripts."""

    def __init__(self, scheme: dict[str, str], python_name: str, sink: list[tuple[str, str, str]]):
        super().__init__(scheme, interpreter="/bin/false", script_kind="posix",
                         hash_algorithm="sha256")
        self._python_name = python_name
        self._sink = sink
        self.written: list[str] = []

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO,
                    is_executable: bool) -> RecordEntry:
        entry = super().write_to_fs(scheme, path, stream, is_executable)
        self.written.append(os.path.join(self.scheme_dict[scheme], path))
        return entry

    def write_script(self, name: str, module: str, attr: str, section: Any) -> RecordEntry:
        if section == "console":
            self._sink.append((name, module, attr))
        text = script_launcher(self._python_name, module, attr)
        return self.write_to_fs(Scheme("scripts"), name, io.BytesIO(text.encode()),
                                is_executable=True)


def _scheme(python_home: Path, site_packages: Path) -> dict[str, str]:
    xy = site_packages.parent.name.removeprefix("python")
    return {
        "purelib": str(site_packages),
        "platlib": str(site_packages),
        "headers": str(python_home / "include" / f"python{xy}"),
        "scripts": str(python_home / "bin"),
        "data": str(python_home),
    }


def install_wheel(wheel: Path, *, python_home: Path, site_packages: Path,
                  python_name: str) -> Installed:
    scripts: list[tuple[str, str, str]] = []
    dest = _Destination(_scheme(python_home, site_packages), python_name, scripts)
    try:
        with WheelFile.open(wheel) as source:
            meta = HeaderParser().parsestr(source.read_dist_info("METADATA"))
            install(source=source, destination=dest,
                    additional_metadata={"INSTALLER": b"isolate\n"})
    except (InstallerError, BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(
            f"cannot install {wheel.name}: {exc}",
            hint="the wheel is corrupt or not a wheel; remove it from the cache and rebuild",
        ) from exc
    return Installed(name=canonicalize_name(meta["Name"]), version=meta["Version"],
                     console_scripts=tuple(sorted(scripts)), files=tuple(dest.written))
