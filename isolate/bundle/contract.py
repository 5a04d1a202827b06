"""The runtime profile's contract, checked on a finished tree before it is published.

Two checks, each refusing the build with a ``ContractError`` (exit 2) that names every
file or host at fault:

- the floors: no ELF file may need a newer glibc (``GLIBC_*``), libstdc++
  (``GLIBCXX_*``, ``CXXABI_*``) or libgcc_s (``GCC_*``) than ``[target]`` allows;
- the required hosts (``[target] hosts``): the runtime must be predicted compatible with
  each, unless the packager accepts one with ``--allow-incompatible HOST``, which the
  manifest records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from isolate import compat
from isolate.errors import ContractError, InputError
from isolate.model import floors
from isolate.model.floors import Floor
from isolate.model.manifest import AllowedIncompatible, ElfFacts
from isolate.model.profiles import HostProfile, RuntimeProfile
from isolate.profiles import known_hint

FILES_PER_ORIGIN = 10  # offending files listed per wheel (or the interpreter); the rest counted


@dataclass(frozen=True, kw_only=True, slots=True)
class Origins:
    """Where the files of a bundle came from, to name them in an error."""

    by_file: Mapping[str, str]  # bundle-relative path -> "wheel X.whl", "vendored from /p"
    default: str  # for the rest: "the interpreter (local:/usr/bin/python3.12)"

    def of(self, rel: str) -> str:
        return self.by_file.get(rel, self.default)


def check_floors(profile: RuntimeProfile, profile_path: Path, file_floors: Sequence[Floor],
                 origins: Origins) -> None:
    """Refuse a tree any of whose files needs more than the profile's ``[target]`` allows."""
    ceilings = profile.ceilings
    bad = compat.floor_violations(file_floors, ceilings)
    if not bad:
        return
    kinds = [k for k in floors.KIND_NAMES if any(f.kind == k for f in bad)]
    lines: list[str] = []
    for kind_name in kinds:
        k = floors.kind(kind_name)
        of_kind = [f for f in bad if f.kind == kind_name]
        highest = max(of_kind, key=lambda f: floors.version_key(f.version))
        lines.append(f"  {k.library}: [target] {kind_name} = \"{ceilings[kind_name]}\", but "
                     f"{len(of_kind)} file{'s need' if len(of_kind) != 1 else ' needs'} more (up to "
                     f"{highest.symbol}):")
        groups: dict[str, list[Floor]] = {}
        for f in of_kind:
            groups.setdefault(origins.of(f.file), []).append(f)
        # wheels first: they are what a packager can most easily change
        for origin in sorted(groups, key=lambda o: (not o.startswith("wheel "), o)):
            found = groups[origin]
            lines.append(f"    {origin}:")
            lines += [f"      {f.file} needs {f.symbol}" for f in found[:FILES_PER_ORIGIN]]
            if len(found) > FILES_PER_ORIGIN:
                lines.append(f"      ... and {len(found) - FILES_PER_ORIGIN} more files")
    summary = ", ".join(
        f"{floors.kind(k).library} "
        f"{max((f for f in bad if f.kind == k), key=lambda f: floors.version_key(f.version)).version}"
        f" > {ceilings[k]}" for k in kinds)
    tips = ["choose an older wheel of the package that ships the file (one built for the "
            "target, e.g. manylinux_2_N with N at most the target glibc)",
            f"raise [target] {' / '.join(kinds)} in {profile_path}"]
    if "glibc" in kinds:
        tips.append(f"use an interpreter built for the target glibc: a source-built one "
                    f"(`--python source:{profile.python}`) or a python-build-standalone "
                    "install_only archive (`--python FILE`)")
    raise ContractError(
        f"the runtime needs more from the host than its profile allows ({summary}); "
        "nothing was published",
        details="\n".join(lines),
        hint="; or ".join(tips),
    )


def check_hosts(profile: RuntimeProfile, profile_path: Path, *, arch: str, elf: ElfFacts,
                python_version: str, required: Sequence[HostProfile],
                allow: Sequence[str]) -> tuple[AllowedIncompatible, ...]:
    """Refuse a runtime predicted incompatible with a required host not in ``allow``;
    return the incompatible hosts ``allow`` accepted, with their reasons."""
    ids = [h.id for h in required]
    for host_id in allow:
        if host_id not in ids:
            raise InputError(
                f"--allow-incompatible {host_id}: not a required host of runtime "
                f"{profile.name}",
                hint=known_hint(host_id, ids, "required hosts") if ids else
                f"{profile_path} names no required hosts ([target] hosts)")
    failing: list[tuple[str, tuple[str, ...]]] = []
    for host in required:
        prediction = compat.predict(arch=arch, elf=elf, python_version=python_version,
                                    host=host)
        if prediction.verdict != "compatible":
            failing.append((host.id, prediction.reasons))
    refused = [(h, r) for h, r in failing if h not in allow]
    if refused:
        n = len(refused)
        raise ContractError(
            f"the runtime is predicted not to run on {n} required host{'s' if n != 1 else ''}"
            f" ({', '.join(h for h, _r in refused)}); nothing was published",
            details="\n".join(f"  {h}: {'; '.join(r)}" for h, r in refused),
            hint=f"make the runtime fit the host (the reasons above: older wheels, an "
                 f"interpreter with a lower glibc floor such as `--python "
                 f"source:{profile.python}`), remove the host from [target] hosts in "
                 f"{profile_path}, or accept it with --allow-incompatible HOST (recorded in "
                 "the manifest)")
    return tuple(AllowedIncompatible(host=h, reasons=r) for h, r in failing)
