"""Find, read and validate profiles: a user's workspace first, then isolate's built-ins.

A workspace is the nearest directory, from the current one upward, that has a
``profiles/`` folder (or the one given with ``--root``). Its ``profiles/runtimes``,
``profiles/hosts`` and ``constraints/`` override isolate's own, which ship inside the
package. Local hosts (``local-X.Y``) are made from the interpreters found on this
machine.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from isolate import compat
from isolate.errors import InputError, ProfileError
from isolate.interpreters import Discovery, Interpreter
from isolate.model.fields import Problem
from isolate.model.hostlibs import ShippedLibrary
from isolate.model.profiles import HostProfile, Libc, Provision, RuntimeProfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
PROFILE_HINT = "see 'Profile format' in README.rst"


def builtin_root() -> Path:
    """Where isolate's own profiles and locks live: in the wheel, or in the checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_builtin"
    if (packaged / "profiles").is_dir():
        return packaged
    return here.parent


def find_workspace(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / "profiles").is_dir():
            return d
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedRuntime:
    profile: RuntimeProfile
    path: Path
    sha256: str
    builtin: bool

    @property
    def constraints_path(self) -> Path | None:
        if self.profile.constraints is None:
            return None
        return (self.path.parent / self.profile.constraints).resolve()


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedHost:
    profile: HostProfile
    path: Path | None  # None for generated local hosts
    builtin: bool


def _read_toml(path: Path) -> tuple[dict[str, object], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason})", hint=PROFILE_HINT) from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: TOML syntax error: {exc}", hint=PROFILE_HINT) from exc


def _line_of(text: str, key: str) -> int | None:
    """Best-effort line number of a dotted key path (``tests.command``,
    ``host_libraries[1].soname``) in TOML text."""
    parts = key.split(".")
    lines = text.splitlines()
    start, end = 0, len(lines)
    if len(parts) > 1:
        m = re.match(r"^(.*?)(?:\[(\d+)\])?$", parts[0])
        assert m is not None
        table, index = m.group(1), int(m.group(2) or 0)
        header = re.compile(r"^\s*\[+\s*" + re.escape(table) + r"\s*\]+")
        seen = -1
        for i, line in enumerate(lines):
            if header.match(line):
                seen += 1
                if seen == index:
                    start = i
                    break
        for j in range(start + 1, len(lines)):
            if re.match(r"^\s*\[", lines[j]):
                end = j
                break
    last = re.sub(r"\[\d+\]$", "", parts[-1])
    assign = re.compile(r"^\s*" + re.escape(last) + r"\s*=")
    for i in range(start, end):
        if assign.match(lines[i]):
            return i + 1
    return None


def _raise_problems(path: Path, text: str, kind: str, problems: list[Problem]) -> None:
    rendered = []
    for p in problems:
        line = _line_of(text, p.key) if p.key else None
        rendered.append(f"  line {line}: {p}" if line else f"  {p}")
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    raise ProfileError(
        f"{path}: invalid {kind} profile ({count})",
        details="\n".join(rendered),
        hint=f"fix the keys named above; {PROFILE_HINT}",
    )


def _load(path: Path, parse: Callable[..., T | None], key: str, kind: str) -> tuple[T, str]:
    """Parse and validate one profile file whose ``key`` must match its file name."""
    data, text = _read_toml(path)
    problems: list[Problem] = []
    profile = parse(data, problems=problems)
    if profile is not None and getattr(profile, key) != path.stem:
        problems.append(Problem(key, f"{getattr(profile, key)!r} must match the file name "
                                     f"{path.stem!r}"))
    if profile is None or problems:
        _raise_problems(path, text, kind, problems)
    assert profile is not None
    return profile, text


def load_runtime_file(path: Path, *, builtin: bool = False) -> LoadedRuntime:
    profile, text = _load(path, RuntimeProfile.from_dict, "name", "runtime")
    return LoadedRuntime(profile=profile, path=path, builtin=builtin,
                         sha256=hashlib.sha256(text.encode()).hexdigest())


def load_host_file(path: Path, *, builtin: bool = False) -> LoadedHost:
    profile, _text = _load(path, HostProfile.from_dict, "id", "host")
    return LoadedHost(profile=profile, path=path, builtin=builtin)


def local_host(interp: Interpreter) -> HostProfile:
    """A host profile for this machine with ``interp`` as its platform Python."""
    from isolate.hostfacts import this_machine  # local facts, read from the running system

    facts = this_machine()
    return HostProfile(
        id=f"local-{interp.minor_text}",
        name=f"this machine, platform Python {interp.version_text} ({interp.origin})",
        distro=facts.distro,
        release=facts.release,
        codename=facts.codename,
        arch=facts.arch,
        libc=Libc(family=facts.libc_family, version=facts.libc_version),
        gcc_runtime=dict(facts.gcc_runtime),
        python=interp.version_text,
        provision=Provision(method="local", interpreter=str(interp.path)),
        notes="generated from the interpreters found on this machine",
    )


class _ProbedLibraries(Mapping[str, ShippedLibrary]):
    """Host libraries of this machine, each looked for when first asked about."""

    def __init__(self) -> None:
        self._seen: dict[str, ShippedLibrary | None] = {}

    def __getitem__(self, soname: str) -> ShippedLibrary:
        from isolate.hostfacts import host_library

        if soname not in self._seen:
            self._seen[soname] = host_library(soname)
        found = self._seen[soname]
        if found is None:
            raise KeyError(soname)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter([s for s, lib in self._seen.items() if lib is not None])

    def __len__(self) -> int:
        return sum(1 for lib in self._seen.values() if lib is not None)


def this_host() -> HostProfile:
    """This machine as a host profile (``isolate verify --here``); its host libraries are
    looked for on this machine when a check asks about them."""
    from isolate.hostfacts import this_machine

    facts = this_machine()
    return HostProfile(
        id="here", name="this machine", distro=facts.distro, release=facts.release,
        codename=facts.codename, arch=facts.arch,
        libc=Libc(family=facts.libc_family, version=facts.libc_version),
        gcc_runtime=dict(facts.gcc_runtime), python=None,
        provision=Provision(method="static"), host_libraries=_ProbedLibraries(),
        notes="read from the running system")


def absent_local_host(host_id: str) -> HostProfile | None:
    """For a well-formed ``local-X.Y`` id with no such interpreter here: a profile whose
    cells are "not run" (with the reason), so a matrix can name hosts a machine lacks."""
    m = re.fullmatch(r"local-(\d+)\.(\d+)", host_id)
    if m is None:
        return None
    facts = local_host(Interpreter(path=Path("/nonexistent"), version=(int(m[1]), int(m[2]), 0),
                                   implementation="CPython", prefix=Path("/nonexistent"),
                                   origin="absent"))
    return HostProfile(id=host_id, name=f"this machine, platform Python {m[1]}.{m[2]} (not "
                       "installed here)", distro=facts.distro, release=facts.release,
                       codename=facts.codename, arch=facts.arch, libc=facts.libc,
                       gcc_runtime=facts.gcc_runtime, python=f"{m[1]}.{m[2]}",
                       provision=Provision(method="local"),
                       notes="no such interpreter on this machine")


class Catalog:
    """All profiles visible from one workspace. Reads files on demand."""

    def __init__(self, *, root: Path | None, discovery: Discovery, builtin: Path | None = None):
        self.root = root
        self.builtin = builtin or builtin_root()
        self._discovery = discovery

    # -- where things are -------------------------------------------------------------
    def _dirs(self, kind: str) -> list[tuple[Path, bool]]:
        dirs: list[tuple[Path, bool]] = []
        if self.root is not None:
            dirs.append((self.root / "profiles" / kind, self.root.resolve() == self.builtin.resolve()))
        dirs.append((self.builtin / "profiles" / kind, True))
        return dirs

    def _files(self, kind: str) -> dict[str, tuple[Path, bool]]:
        out: dict[str, tuple[Path, bool]] = {}
        for d, builtin in reversed(self._dirs(kind)):  # workspace last, so it wins
            if d.is_dir():
                for p in sorted(d.glob("*.toml")):
                    out[p.stem] = (p, builtin)
        return dict(sorted(out.items()))

    def lock_dir_for_write(self) -> Path:
        return (self.root or Path.cwd()) / "constraints"

    def lock_path(self, name: str, *, suffix: str = "") -> Path:
        """The lock to read: the workspace's when it has one, else the built-in one."""
        filename = f"{name}{suffix}.txt"
        if self.root is not None and (self.root / "constraints" / filename).exists():
            return self.root / "constraints" / filename
        builtin = self.builtin / "constraints" / filename
        if builtin.exists():
            return builtin
        return self.lock_dir_for_write() / filename

    # -- runtimes ---------------------------------------------------------------------
    def runtime_names(self) -> list[str]:
        return list(self._files("runtimes"))

    def runtime(self, name: str) -> LoadedRuntime:
        files = self._files("runtimes")
        if name not in files:
            raise InputError(
                f"unknown runtime profile {name!r}",
                hint=known_hint(name, list(files), "runtime profiles"),
            )
        path, builtin = files[name]
        return load_runtime_file(path, builtin=builtin)

    def runtimes(self) -> list[LoadedRuntime]:
        return [load_runtime_file(p, builtin=b) for p, b in self._files("runtimes").values()]

    def runtime_entries(self) -> list[ProfileEntry[LoadedRuntime]]:
        """Every runtime profile file, each loaded or with its error: one broken file
        does not hide the others."""
        return [_entry(name, p, b, load_runtime_file)
                for name, (p, b) in self._files("runtimes").items()]

    def host_entries(self) -> list[ProfileEntry[LoadedHost]]:
        """Every host profile (files, then local hosts), each loaded or with its error."""
        files = [_entry(name, p, b, load_host_file)
                 for name, (p, b) in self._files("hosts").items()]
        return files + [ProfileEntry(name=h.profile.id, path=None, builtin=True, loaded=h)
                        for h in self.local_hosts()]

    # -- interpreter locks (the source interpreter provider) ----------------------------
    def interpreter_versions(self) -> list[str]:
        """The CPython versions that have an interpreter lock (``cpython-X.Y.toml``)."""
        names = [n.removeprefix("cpython-") for n in self._files("interpreters")
                 if n.startswith("cpython-")]
        return sorted(names, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))

    def interpreter_lock_path(self, python: str) -> Path:
        files = self._files("interpreters")
        name = f"cpython-{python}"
        if name not in files:
            known = self.interpreter_versions()
            raise InputError(
                f"no interpreter lock for CPython {python}: isolate can build "
                f"{', '.join(known) or 'no version'} from source",
                hint=f"use one of {', '.join(known) or '(none)'}, or add "
                     f"profiles/interpreters/{name}.toml to the workspace",
            )
        return files[name][0]

    # -- development packages (bindings to host libraries) -----------------------------
    def dev_packages_path(self, name: str) -> Path:
        files = self._files("devpackages")
        if name not in files:
            raise InputError(
                f"no development-packages lock named {name!r} "
                f"(known: {', '.join(files) or 'none'})",
                hint=f"add profiles/devpackages/{name}.toml to the workspace, or name one "
                     "of the known locks in the runtime profile's [native_builds]")
        return files[name][0]

    # -- hosts ------------------------------------------------------------------------
    def local_hosts(self) -> list[LoadedHost]:
        return [
            LoadedHost(profile=local_host(i), path=None, builtin=True)
            for i in self._discovery.by_minor().values()
        ]

    def host_ids(self) -> list[str]:
        ids = list(self._files("hosts"))
        ids += [f"local-{i.minor_text}" for i in self._discovery.by_minor().values()]
        return ids

    def host(self, host_id: str) -> LoadedHost:
        files = self._files("hosts")
        if host_id in files:
            path, builtin = files[host_id]
            return load_host_file(path, builtin=builtin)
        if host_id.startswith("local-"):
            for h in self.local_hosts():
                if h.profile.id == host_id:
                    return h
        raise InputError(
            f"unknown host profile {host_id!r}",
            hint=known_hint(host_id, self.host_ids(), "host profiles"),
        )

    def hosts(self) -> list[LoadedHost]:
        files = [load_host_file(p, builtin=b) for p, b in self._files("hosts").values()]
        return files + self.local_hosts()

    def required_hosts(self, loaded: LoadedRuntime) -> RequiredHosts:
        """The host profiles a runtime profile's ``[target] hosts`` names.

        An exact id no host profile has is refused with the closest ids (a well-formed
        ``local-X.Y`` counts as known: it is this machine, with or without that Python); a
        pattern that matches nothing is a note."""
        patterns = loaded.profile.hosts
        known = self.host_ids()
        absent_local = [p for p in patterns if p not in known and absent_local_host(p)]
        match = compat.match_required(patterns, [*known, *absent_local])
        if match.unknown:
            raise ProfileError(
                f"{loaded.path}: [target] hosts names unknown host"
                f"{'s' if len(match.unknown) != 1 else ''} {', '.join(match.unknown)}",
                details="\n".join(f"  {u}: {known_hint(u, known, 'host profiles')}"
                                  for u in match.unknown),
                hint="use ids that `isolate profiles` lists, or a pattern such as 'local-*'")
        notes = tuple(f"{loaded.path}: [target] hosts pattern {p!r} matches no host profile "
                      f"(known: {', '.join(known) or 'none'})" for p in match.unmatched)
        profiles: list[HostProfile] = []
        for host_id in match.hosts:
            absent = absent_local_host(host_id) if host_id in absent_local else None
            profiles.append(absent or self.host(host_id).profile)
        return RequiredHosts(patterns=patterns, hosts=tuple(profiles), notes=notes)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileEntry(Generic[T]):
    """A profile file as listed: loaded, or the error that loading it raised."""

    name: str
    path: Path | None  # None for generated local hosts
    builtin: bool
    loaded: T | None = None
    error: ProfileError | None = None


def _entry(name: str, path: Path, builtin: bool,
           load: Callable[..., T]) -> ProfileEntry[T]:
    try:
        return ProfileEntry(name=name, path=path, builtin=builtin,
                            loaded=load(path, builtin=builtin))
    except ProfileError as exc:
        return ProfileEntry(name=name, path=path, builtin=builtin, error=exc)


@dataclass(frozen=True, kw_only=True, slots=True)
class RequiredHosts:
    patterns: tuple[str, ...]  # as the profile wrote them
    hosts: tuple[HostProfile, ...]  # the host profiles they match here
    notes: tuple[str, ...]  # warnings: patterns that match nothing


def known_hint(name: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    tip = f"did you mean {close[0]!r}? " if close else ""
    return f"{tip}known {what}: {', '.join(known) or 'none'} (`isolate profiles` lists them)"
