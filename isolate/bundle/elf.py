"""ELF facts: what the dynamic loader and a host need to know about a bundle's files.

Reading is done with pyelftools (never by hand): ``read_elf`` gives one file's
DT_NEEDED, DT_SONAME, DT_RPATH/DT_RUNPATH, PT_INTERP and the versions it needs
(``.gnu.version_r``); ``glibc_floor``, ``file_floors`` and ``highest_floors`` turn them
into what a tree needs from its host. The allow-list (``load_allowlist``) names the
sonames every compatible host provides.

Only reading: ``verify`` needs nothing else. Making a tree self-contained (library
search, vendoring, RPATH rewriting with patchelf) is ``isolate.bundle.elf_closure``.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isolate.errors import EnvironmentProblem, InputError
from isolate.model import floors
from isolate.model.floors import Floor

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "AllowList",
    "ElfFile",
    "file_floors",
    "glibc_floor",
    "highest_floors",
    "is_elf",
    "iter_elf_files",
    "load_allowlist",
    "read_elf",
    "relative_path",
]

ELF_MAGIC = b"\x7fELF"
# What ``read_elf`` reads and how: kept with facts stored by content (isolate.bundle.
# elf_cache), so a change here makes them stale. Raise it when ``_parse`` changes.
FACTS_VERSION = 1
ALLOWLIST_RESOURCE = "elf_allowlist.toml"

_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")
_LOADER = re.compile(r"^(?:ld-linux[\w.-]*|ld64|ld|ld-musl-[\w.-]+)\.so\.\d+$")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, kw_only=True, slots=True)
class ElfFile:
    """What the dynamic loader needs to know about one ELF file."""

    path: Path
    machine: str  # "x86_64", "aarch64", ... (the wheel-platform spelling)
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]  # DT_RPATH entries, split on ':'
    runpath: tuple[str, ...]  # DT_RUNPATH entries
    interpreter: str | None  # PT_INTERP
    glibc_versions: tuple[str, ...]  # "GLIBC_2.2.5", ... from .gnu.version_r, ascending
    # (library the version is needed from, version name): every numbered version
    # (GLIBC_2.34, GLIBCXX_3.4.30, LIBVIRT_6.10.0, ...), sorted
    version_needs: tuple[tuple[str, str], ...] = ()

    def facts_dict(self) -> dict[str, Any]:
        """The facts as JSON data, without the path (they belong to the content)."""
        return {"machine": self.machine, "soname": self.soname, "needed": list(self.needed),
                "rpath": list(self.rpath), "runpath": list(self.runpath),
                "interpreter": self.interpreter, "glibc_versions": list(self.glibc_versions),
                "version_needs": [list(v) for v in self.version_needs]}

    @classmethod
    def from_facts(cls, path: Path, d: Mapping[str, Any]) -> ElfFile:
        """The facts ``facts_dict`` wrote, for the file at ``path``; ``TypeError``,
        ``KeyError`` or ``ValueError`` when ``d`` is not such data."""

        def strs(value: Any) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"expected a list of strings, got {value!r:.60}")
            return tuple(value)

        def opt(value: Any) -> str | None:
            if value is not None and not isinstance(value, str):
                raise TypeError(f"expected a string or null, got {value!r:.60}")
            return value

        machine = d["machine"]
        if not isinstance(machine, str):
            raise TypeError("machine: expected a string")
        needs = d["version_needs"]
        if not isinstance(needs, list):
            raise TypeError("version_needs: expected a list")
        pairs = [strs(v) for v in needs]
        if any(len(v) != 2 for v in pairs):
            raise ValueError("version_needs: expected pairs")
        return cls(path=path, machine=machine, soname=opt(d["soname"]),
                   needed=strs(d["needed"]), rpath=strs(d["rpath"]),
                   runpath=strs(d["runpath"]), interpreter=opt(d["interpreter"]),
                   glibc_versions=strs(d["glibc_versions"]),
                   version_needs=tuple((a, b) for a, b in pairs))

    @property
    def glibc_max(self) -> tuple[int, ...] | None:
        """The highest GLIBC version this file needs, e.g. ``(2, 34)``."""
        if not self.glibc_versions:
            return None
        return max(_glibc_key(v) for v in self.glibc_versions)


def _glibc_key(name: str) -> tuple[int, ...]:
    m = _GLIBC_VERSION.match(name)
    if m is None:  # pragma: no cover - only GLIBC_x.y names are stored
        return ()
    return tuple(int(part) for part in m.group(1).split("."))


def is_elf(path: Path) -> bool:
    """True when ``path`` is a regular file (after symlinks) starting with the ELF magic."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except (OSError, ValueError):
        return False


def _machine(elf: Any) -> str:
    em = elf["e_machine"]
    is64 = elf.elfclass == 64
    little = bool(elf.little_endian)
    known = {
        "EM_X86_64": "x86_64" if is64 else "x32",
        "EM_386": "i686",
        "EM_AARCH64": "aarch64",
        "EM_ARM": "armv7l",
        "EM_PPC64": "ppc64le" if little else "ppc64",
        "EM_PPC": "ppc",
        "EM_S390": "s390x" if is64 else "s390",
        "EM_RISCV": "riscv64" if is64 else "riscv32",
        "EM_LOONGARCH": "loongarch64" if is64 else "loongarch32",
    }
    if isinstance(em, str):
        return known.get(em, em.lower().removeprefix("em_"))
    return f"em{int(em)}"


def _split_path(value: str) -> tuple[str, ...]:
    return tuple(entry for entry in value.split(":") if entry)


def _same(obj: Any) -> Any:
    return obj


def _headers(elf: Any, what: str) -> Iterator[tuple[Any, Callable[[], Any]]]:
    """(header, build) for each section or segment, without building them all.

    Uses pyelftools' ``_get_section_header``/``_get_segment_header`` (stable since
    0.2x, but private) when present, else builds every object (slow, same result).
    """
    if what == "section":
        count, get_header = elf.num_sections(), getattr(elf, "_get_section_header", None)
        build, make_from = elf.get_section, getattr(elf, "_make_section", None)
    else:
        count, get_header = elf.num_segments(), getattr(elf, "_get_segment_header", None)
        build, make_from = elf.get_segment, getattr(elf, "_make_segment", None)
    for i in range(count):
        if get_header is None or make_from is None:
            obj = build(i)
            yield obj.header, functools.partial(_same, obj)
        else:
            header = get_header(i)
            yield header, functools.partial(make_from, header)


def _elf_file(stream: Any) -> Any:
    # pyelftools is imported when a file is parsed: it takes ~40 ms to import, which a
    # verify whose facts all come from isolate.bundle.elf_cache need not pay
    from elftools.elf.elffile import ELFFile

    return ELFFile(stream)


def _gnu_verneed_section() -> Any:
    from elftools.elf.gnuversions import GNUVerNeedSection

    return GNUVerNeedSection


def _parse(path: Path, elf: Any) -> ElfFile:
    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    interpreter: str | None = None
    versions: set[str] = set()
    needs: set[tuple[str, str]] = set()

    # Parse headers first and build only the sections wanted: pyelftools builds hash
    # tables and symbol tables eagerly, which would cost ~15 ms a file.
    dynamic: Any = None
    for header, make in _headers(elf, "section"):
        kind = header["sh_type"]
        if kind == "SHT_DYNAMIC" and dynamic is None:
            dynamic = make()
        elif kind == "SHT_GNU_verneed":
            section = make()
            if isinstance(section, _gnu_verneed_section()):
                for verneed, aux_iter in section.iter_versions():
                    library = str(verneed.name)
                    for aux in aux_iter:
                        name = str(aux.name)
                        if _GLIBC_VERSION.match(name):
                            versions.add(name)
                        if floors.split_symbol_version(name) is not None:
                            needs.add((library, name))
    for header, make in _headers(elf, "segment"):
        kind = header["p_type"]
        if kind == "PT_INTERP":
            interpreter = str(make().get_interp_name())
        elif kind == "PT_DYNAMIC" and dynamic is None:
            dynamic = make()  # section headers stripped: read the segment instead
    if dynamic is not None:
        for tag in dynamic.iter_tags():
            kind = tag.entry.d_tag
            if kind == "DT_NEEDED":
                needed.append(str(tag.needed))
            elif kind == "DT_SONAME":
                soname = str(tag.soname)
            elif kind == "DT_RPATH":
                rpath.extend(_split_path(str(tag.rpath)))
            elif kind == "DT_RUNPATH":
                runpath.extend(_split_path(str(tag.runpath)))
    return ElfFile(
        path=path,
        machine=_machine(elf),
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        interpreter=interpreter,
        glibc_versions=tuple(sorted(versions, key=_glibc_key)),
        version_needs=tuple(sorted(needs)),
    )


def read_elf(path: Path, data: bytes | None = None) -> ElfFile:
    """Read the dynamic-linking facts of one ELF file; ``InputError`` when it is corrupt.

    ``data``, when given, is the file's whole content, already read (e.g. from an archive
    stream): it is parsed instead of opening ``path``, which then only names the file."""
    try:
        if data is not None:
            return _parse(path, _elf_file(io.BytesIO(data)))
        with open(path, "rb") as f:
            return _parse(path, _elf_file(f))
    except OSError as exc:
        raise InputError(
            f"cannot read ELF file {path}: {exc.strerror or exc}",
            hint=f"check that {path} exists and is readable",
        ) from exc
    except Exception as exc:  # pyelftools raises many types on malformed input
        raise InputError(
            f"{path} is not a valid ELF file: {exc}",
            hint=f"{path} looks truncated or corrupt; rebuild or reinstall what provides it",
        ) from exc


def _has_magic(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.read(fd, 4) == ELF_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def iter_elf_files(root: Path) -> Iterator[Path]:
    """Every regular ELF file under ``root``, sorted; symlinks are neither followed nor listed.

    Walks with ``os.scandir`` (no stat per file) and reads 4 bytes of each regular file:
    a bundle's standard library alone has tens of thousands of files.
    """
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from iter_elf_files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) and _has_magic(entry.path):
                yield Path(entry.path)
        except OSError:
            continue


def _is_dynamic_loader(elf: ElfFile) -> bool:
    return bool(_LOADER.match(elf.path.name) or (elf.soname and _LOADER.match(elf.soname)))


def glibc_floor(files: Iterable[ElfFile], root: Path) -> tuple[str, str, str] | None:
    """``("2.34", "relative/file", "GLIBC_2.34")``: the highest GLIBC version any file needs.

    The dynamic loader itself is skipped. Ties go to the first file in path order.
    """
    best: tuple[tuple[int, ...], str, str] | None = None
    for elf in sorted(files, key=lambda e: e.path.as_posix()):
        if _is_dynamic_loader(elf) or not elf.glibc_versions:
            continue
        top = max(elf.glibc_versions, key=_glibc_key)
        key = _glibc_key(top)
        if best is None or key > best[0]:
            best = (key, relative_path(elf.path, root), top)
    if best is None:
        return None
    key, rel, symbol = best
    return ".".join(str(k) for k in key), rel, symbol


def file_floors(files: Iterable[ElfFile], root: Path) -> tuple[Floor, ...]:
    """Per file and floor kind, the highest version the file needs from the host.

    The dynamic loader is skipped (it defines glibc's versions, it does not need them).
    Sorted by file, then kind, in ``floors.KIND_NAMES`` order."""
    out: list[Floor] = []
    order = {name: i for i, name in enumerate(floors.KIND_NAMES)}
    for elf in sorted(files, key=lambda e: e.path.as_posix()):
        if _is_dynamic_loader(elf):
            continue
        best: dict[str, tuple[tuple[int, ...], str, str]] = {}
        for library, symbol in elf.version_needs:
            found = floors.classify(library, symbol)
            if found is None:
                continue
            kind_name, version = found
            key = floors.version_key(version)
            if kind_name not in best or key > best[kind_name][0]:
                best[kind_name] = (key, version, symbol)
        rel = relative_path(elf.path, root)
        for kind_name in sorted(best, key=order.__getitem__):
            _key, version, symbol = best[kind_name]
            out.append(Floor(kind=kind_name, version=version, symbol=symbol, file=rel))
    return tuple(out)


def highest_floors(per_file: Iterable[Floor]) -> tuple[Floor, ...]:
    """The highest floor of each kind (ties: the first file in path order)."""
    best: dict[str, Floor] = {}
    for f in per_file:
        if f.kind not in best or floors.version_key(f.version) > floors.version_key(
                best[f.kind].version):
            best[f.kind] = f
    return tuple(best[k] for k in floors.KIND_NAMES if k in best)


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as POSIX text (a ``../`` path when it is outside)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


# --------------------------------------------------------------------------- allow-list


@dataclass(frozen=True, kw_only=True, slots=True)
class AllowList:
    """Sonames every compatible host provides; never vendored."""

    sonames: frozenset[str]

    def allows(self, soname: str) -> bool:
        return soname in self.sonames


def load_allowlist() -> AllowList:
    """The packaged allow-list (``elf_allowlist.toml``: glibc, the GCC runtime, loaders)."""
    resource = importlib.resources.files("isolate.bundle").joinpath(ALLOWLIST_RESOURCE)
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
        names = [*(n for group in data["host_provided"].values() for n in group),
                 *data["dynamic_loaders"]["sonames"]]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise EnvironmentProblem(
            f"cannot read the ELF allow-list isolate/bundle/{ALLOWLIST_RESOURCE}: {exc}",
            hint="reinstall isolate; the package data file is missing or damaged",
        ) from exc
    return AllowList(sonames=frozenset(str(n) for n in names))
