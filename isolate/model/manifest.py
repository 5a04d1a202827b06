"""The bundle manifest: a versioned JSON description of a bundle.

Written to ``isolate-manifest.json`` at the bundle's root; every other file of the
bundle is listed with its sha256 and mode. See ``docs/manifest.rst`` for the schema.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from isolate.errors import DocumentError
from isolate.model.document import Reader, kind_of
from isolate.model.floors import KIND_NAMES, Floor
from isolate.model.hostlibs import HostLibraryFloor

SCHEMA = "isolate.manifest/1"
MANIFEST_NAME = "isolate-manifest.json"


class ManifestError(DocumentError):
    """The manifest cannot be read; the message names the key path (``files[3].sha256``)."""

    default_hint = ("the manifest is damaged or was not written by this isolate; rebuild "
                    "the bundle with `isolate bundle`")


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _octal(value: Any) -> int:
    return int(str(value), 8)


def _floors(r: Reader) -> tuple[Floor, ...]:
    return tuple(r.obj(k, functools.partial(Floor.read, k)) for k in r if k in KIND_NAMES)


@dataclass(frozen=True, kw_only=True, slots=True)
class FileEntry:
    path: str  # relative, POSIX
    sha256: str  # of the content; for a symlink, of its target text
    mode: int  # permission bits, e.g. 0o755
    size: int
    kind: str = "file"  # file | symlink
    target: str | None = None  # symlink target, relative

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "sha256": self.sha256,
                               "mode": f"{self.mode:04o}", "size": self.size}
        if self.kind != "file":
            out["kind"] = self.kind
            out["target"] = self.target
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FileEntry:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> FileEntry:
        return cls(path=r.value("path", str), sha256=r.value("sha256", str),
                   mode=r.value("mode", _octal), size=r.value("size", int),
                   kind=r.value("kind", str, "file"), target=r.raw("target", None))


# An entry is made by setting its slots directly: the frozen dataclass's ``__init__``
# (``object.__setattr__`` per field) takes 1.4 us, this 0.5 us, for each of a large
# bundle's 20,000 entries whenever its manifest is read. Every field is set, by name.
_ENTRY_FIELDS = ("path", "sha256", "mode", "size", "kind", "target")
if set(_ENTRY_FIELDS) != {f.name for f in dataclasses.fields(FileEntry)}:
    raise RuntimeError("FileEntry's fields changed: update _entry")
_set_path, _set_sha256, _set_mode, _set_size, _set_kind, _set_target = (
    FileEntry.__dict__[name].__set__ for name in _ENTRY_FIELDS)
_new = object.__new__


def _entry(path: str, sha256: str, mode: int, size: int, kind: str,
           target: str | None) -> FileEntry:
    """``FileEntry(path=path, ...)``, faster."""
    e = _new(FileEntry)
    _set_path(e, path)
    _set_sha256(e, sha256)
    _set_mode(e, mode)
    _set_size(e, size)
    _set_kind(e, kind)
    _set_target(e, target)
    return e


def _file_entries(items: Any) -> tuple[FileEntry, ...]:
    """The ``files`` list. An entry of the types ``to_dict`` writes is built directly: a
    large bundle lists 20,000 and more, and a ``Reader`` per entry costs about 0.1 s
    there. Any other entry is read by ``FileEntry.read``, which converts what it can and
    names the key path of what it cannot (``files[7].mode``), as before."""
    if not isinstance(items, (list, tuple)):
        raise ManifestError(f"expected a list, got {kind_of(items)}")
    out: list[FileEntry] = []
    for i, d in enumerate(items):
        if type(d) is dict:
            path, sha256, mode, size = d.get("path"), d.get("sha256"), d.get("mode"), d.get("size")
            kind = d.get("kind", "file")
            if type(path) is str and type(sha256) is str and type(mode) is str and \
                    type(size) is int and type(kind) is str:
                try:
                    bits = int(mode, 8)
                except ValueError:
                    pass  # the Reader names it
                else:
                    out.append(_entry(path, sha256, bits, size, kind, d.get("target")))
                    continue
        try:
            out.append(FileEntry.read(Reader(d, ManifestError)))
        except DocumentError as exc:
            raise exc.under(f"[{i}]") from exc
    return tuple(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class Distribution:
    name: str
    version: str
    sha256: str  # of the artifact installed (a wheel), checked against the lock
    filename: str
    built_from_sdist: str | None = None  # the sdist's sha256 when we built the wheel

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version,
                               "sha256": self.sha256, "filename": self.filename}
        if self.built_from_sdist:
            out["built_from_sdist"] = self.built_from_sdist
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Distribution:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> Distribution:
        return cls(name=r.value("name", str), version=r.value("version", str),
                   sha256=r.value("sha256", str), filename=r.value("filename", str),
                   built_from_sdist=r.raw("built_from_sdist", None))


@dataclass(frozen=True, kw_only=True, slots=True)
class Interpreter:
    version: str  # "3.12.1"
    source: str  # "local:/root/.pyenv/versions/3.12.1/bin/python3.12" or "pbs:<archive name>"
    executable: str  # relative path in the bundle, e.g. "python/bin/python3.12"
    stdlib: str  # relative, e.g. "python/lib/python3.12"
    site_packages: str  # relative
    pruned: tuple[str, ...] = ()  # relative paths (of the source) left out
    pruned_bytes: int = 0
    # How the executable ignores PYTHON* variables and the user site whoever starts it:
    # "embedded-main" (isolate compiled it) or "built-in" (the source already did); None
    # in manifests of isolate versions that did neither.
    isolated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version, "source": self.source, "executable": self.executable,
            "stdlib": self.stdlib, "site_packages": self.site_packages,
            "pruned": list(self.pruned), "pruned_bytes": self.pruned_bytes}
        if self.isolated is not None:
            out["isolated"] = self.isolated
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Interpreter:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> Interpreter:
        return cls(version=r.value("version", str), source=r.value("source", str),
                   executable=r.value("executable", str), stdlib=r.value("stdlib", str),
                   site_packages=r.value("site_packages", str),
                   pruned=r.value("pruned", tuple, ()),
                   pruned_bytes=r.value("pruned_bytes", int, 0),
                   isolated=r.value("isolated", _opt_str, None))


@dataclass(frozen=True, kw_only=True, slots=True)
class VendoredLib:
    soname: str
    path: str  # relative path in the bundle
    origin: str  # absolute path on the build host it was copied from
    needed_by: tuple[str, ...]  # relative paths of the ELF files that need it

    def to_dict(self) -> dict[str, Any]:
        return {"soname": self.soname, "path": self.path, "origin": self.origin,
                "needed_by": list(self.needed_by)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VendoredLib:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> VendoredLib:
        return cls(soname=r.value("soname", str), path=r.value("path", str),
                   origin=r.value("origin", str), needed_by=r.value("needed_by", tuple, ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class ElfFacts:
    glibc_floor: str | None  # "2.34", None when nothing needs a versioned glibc symbol
    glibc_floor_file: str | None  # relative path of the file that sets it
    glibc_floor_symbol: str | None  # e.g. "GLIBC_2.34"
    vendored: tuple[VendoredLib, ...] = ()
    host_libraries: tuple[Mapping[str, Any], ...] = ()  # from the runtime profile
    system_libraries: tuple[str, ...] = ()  # allow-listed sonames the bundle needs from the host
    elf_files: int = 0
    # The highest version of each kind (glibc, glibcxx, cxxabi, gcc) the bundle needs from
    # the host; a kind nothing needs is absent. Manifests written before isolate recorded
    # them have none (then only the glibc_floor keys are known).
    floors: tuple[Floor, ...] = ()
    # Per declared host library: the files that need it and the highest symbol version
    # they need from it (see isolate.model.hostlibs). Older manifests have none.
    host_floors: tuple[HostLibraryFloor, ...] = ()

    def host_floor(self, soname: str) -> HostLibraryFloor | None:
        return next((h for h in self.host_floors if h.soname == soname), None)

    def floor(self, kind_name: str) -> Floor | None:
        found = next((f for f in self.floors if f.kind == kind_name), None)
        if found is None and kind_name == "glibc" and self.glibc_floor:
            return Floor(kind="glibc", version=self.glibc_floor,
                         symbol=self.glibc_floor_symbol or f"GLIBC_{self.glibc_floor}",
                         file=self.glibc_floor_file or "?")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"glibc_floor": self.glibc_floor, "glibc_floor_file": self.glibc_floor_file,
                "glibc_floor_symbol": self.glibc_floor_symbol,
                "floors": {f.kind: f.to_dict() for f in self.floors},
                "vendored": [v.to_dict() for v in self.vendored],
                "host_libraries": [dict(h) for h in self.host_libraries],
                "system_libraries": list(self.system_libraries),
                "host_library_floors": [h.to_dict() for h in self.host_floors],
                "elf_files": self.elf_files}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ElfFacts:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> ElfFacts:
        return cls(glibc_floor=r.raw("glibc_floor", None),
                   glibc_floor_file=r.raw("glibc_floor_file", None),
                   glibc_floor_symbol=r.raw("glibc_floor_symbol", None),
                   vendored=r.objs("vendored", VendoredLib.read, ()),
                   host_libraries=r.value("host_libraries", tuple, ()),
                   system_libraries=r.value("system_libraries", tuple, ()),
                   elf_files=r.value("elf_files", int, 0),
                   host_floors=r.value("host_library_floors", lambda v: tuple(
                       HostLibraryFloor.from_dict(h) for h in v), ()),
                   floors=r.obj("floors", _floors, ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class AllowedIncompatible:
    """A required host the runtime is predicted not to run on, accepted at build time
    with ``isolate bundle --allow-incompatible HOST``."""

    host: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AllowedIncompatible:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> AllowedIncompatible:
        return cls(host=r.value("host", str), reasons=r.value("reasons", _strs, ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class Contract:
    """Where the runtime must run, as the runtime profile said when it was built."""

    target: Mapping[str, str] = field(default_factory=dict)  # floor kind -> highest allowed
    required_hosts: tuple[str, ...] = ()  # the profile's [target] hosts (ids and patterns)
    resolved_hosts: tuple[str, ...] = ()  # the host ids they matched at build time
    allowed_incompatible: tuple[AllowedIncompatible, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"target": dict(self.target), "required_hosts": list(self.required_hosts),
                "resolved_hosts": list(self.resolved_hosts),
                "allowed_incompatible": [a.to_dict() for a in self.allowed_incompatible]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Contract:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> Contract:
        return cls(target=r.value("target", lambda v: {str(k): str(x) for k, x in dict(v).items()},
                                  {}),
                   required_hosts=r.value("required_hosts", _strs, ()),
                   resolved_hosts=r.value("resolved_hosts", _strs, ()),
                   allowed_incompatible=r.objs("allowed_incompatible", AllowedIncompatible.read,
                                               ()))


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    name: str  # bundle name, e.g. "nova-34.0.0-cp312-manylinux_2_34_x86_64"
    runtime: str  # runtime profile name
    version: str  # the app's version (first top-level requirement's pin)
    python_tag: str  # "cp312"
    platform: str  # "manylinux_2_34_x86_64"
    arch: str
    tool_version: str
    profile_sha256: str
    lock_sha256: str
    test_lock_sha256: str | None
    # Every build directory's name holds this marker, so the relocation audit can find
    # the build path in any file without the manifest naming the path itself.
    build_marker: str
    interpreter: Interpreter
    distributions: tuple[Distribution, ...]
    scripts: tuple[str, ...]  # launchers in bin/
    elf: ElfFacts
    files: tuple[FileEntry, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    test_command: tuple[str, ...] = ()
    test_env: Mapping[str, str] = field(default_factory=dict)
    test_timeout: float = 1800.0
    test_junit: str | None = None  # the JUnit XML file a command other than unittest/pytest/stestr writes
    source_prefixes: tuple[str, ...] = ()  # build-host paths the interpreter came from
    contract: Contract = field(default_factory=Contract)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "runtime": self.runtime,
            "version": self.version,
            "python_tag": self.python_tag,
            "platform": self.platform,
            "arch": self.arch,
            "tool_version": self.tool_version,
            "profile_sha256": self.profile_sha256,
            "lock_sha256": self.lock_sha256,
            "test_lock_sha256": self.test_lock_sha256,
            "build_marker": self.build_marker,
            "source_prefixes": list(self.source_prefixes),
            "interpreter": self.interpreter.to_dict(),
            "distributions": [d.to_dict() for d in self.distributions],
            "scripts": list(self.scripts),
            "elf": self.elf.to_dict(),
            "contract": self.contract.to_dict(),
            "sizes": dict(self.sizes),
            "tests": {"command": list(self.test_command), "env": dict(self.test_env),
                      "timeout": self.test_timeout, "junit": self.test_junit},
            "files": [f.to_dict() for f in self.files],
        }

    def dumps(self) -> str:
        """Indented JSON, one line per file entry: tens of thousands of entries go through
        json's C encoder (an indented dump is pure Python, about a second for Nova)."""
        d = self.to_dict()
        files = d.get("files")
        if not isinstance(files, list) or not files:
            return json.dumps(d, indent=1, sort_keys=False) + "\n"
        import uuid  # here: readers of manifests (verify) start sooner without it

        marker = f"files-{uuid.uuid4().hex}"
        d["files"] = marker
        text = json.dumps(d, indent=1, sort_keys=False)
        rows = ",\n".join("  " + json.dumps(f) for f in files)
        return text.replace(json.dumps(marker), "[\n" + rows + "\n ]", 1) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        return cls.read(Reader(d, ManifestError))

    @classmethod
    def read(cls, r: Reader) -> Manifest:
        schema = r.raw("schema", None)
        if schema != SCHEMA:
            raise r.fail("schema", f"expected {SCHEMA!r}, got {schema!r}")
        command, env, timeout, junit = r.obj("tests", _tests, ((), {}, 1800.0, None))
        return cls(
            name=r.value("name", str), runtime=r.value("runtime", str),
            version=r.value("version", str), python_tag=r.value("python_tag", str),
            platform=r.value("platform", str), arch=r.value("arch", str),
            tool_version=r.value("tool_version", str),
            profile_sha256=r.value("profile_sha256", str),
            lock_sha256=r.value("lock_sha256", str),
            test_lock_sha256=r.raw("test_lock_sha256", None),
            build_marker=r.value("build_marker", str),
            interpreter=r.obj("interpreter", Interpreter.read),
            distributions=r.objs("distributions", Distribution.read),
            scripts=r.value("scripts", tuple),
            elf=r.obj("elf", ElfFacts.read),
            files=r.value("files", _file_entries),
            sizes=r.value("sizes", dict, {}),
            test_command=command, test_env=env, test_timeout=timeout, test_junit=junit,
            source_prefixes=r.value("source_prefixes", tuple, ()),
            contract=r.obj("contract", Contract.read, Contract()),
        )

    @classmethod
    def loads(cls, text: str | bytes) -> Manifest:
        """The manifest in ``text`` (JSON; bytes are UTF-8); ``ManifestError`` naming the
        key path of the first problem."""
        return cls.from_dict(load_json(text))


def load_json(text: str | bytes) -> dict[str, Any]:
    """The JSON object in ``text`` (bytes are UTF-8), not yet read as a manifest (see
    ``Manifest.from_dict``); ``ManifestError`` when it is not one."""
    try:
        data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text: {exc.reason}") from exc
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError("not a JSON object")
    return data


def _tests(r: Reader) -> tuple[tuple[str, ...], dict[str, str], float, str | None]:
    return (r.value("command", tuple, ()), r.value("env", dict, {}),
            r.value("timeout", float, 1800.0), r.raw("junit", None))
