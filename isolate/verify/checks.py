"""The static checks of ``isolate verify``: each reads a scanned tree and returns findings.

- ``integrity``: every file's sha256 and mode against the manifest; missing, extra and
  modified files, files replaced by symlinks (and the reverse), changed modes.
- ``relocation``: where the build marker or a build-host prefix occurs in a file, and
  every RPATH/RUNPATH entry that is not ``$ORIGIN``-relative or leaves the bundle.
- ``elf_closure``: every DT_NEEDED resolves inside the bundle through the file's own
  ``$ORIGIN`` entries, or is allow-listed, or is a declared host library; the glibc floor
  recomputed and compared with the manifest.
- ``host_compat``: the floors (glibc, libstdc++, libgcc_s), libc family and architecture
  against a host profile.

No check reads a file: ``isolate.verify.scan`` did that once, and kept the section table
of each ELF file in which a needle was found, to tell a string the loader or the program
uses from a leftover or debug string.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from isolate.bundle.elf import AllowList, ElfFile, file_floors, highest_floors
from isolate.model import floors, hostlibs
from isolate.model.floors import Floor
from isolate.model.manifest import Manifest
from isolate.model.tree import OUTSIDE, expand_origin, leaves_root, resolve
from isolate.verify.layout import Layout
from isolate.verify.report import ELF, ERROR, HOST, INTEGRITY, NOTE, RELOCATION, Finding
from isolate.verify.scan import ScannedFile, Tree

if TYPE_CHECKING:
    from isolate.model.profiles import HostProfile

_DEBUG_SECTIONS = (".debug", ".zdebug", ".note", ".comment", ".symtab", ".strtab",
                   ".gnu_debuglink", ".gnu_debugdata")


def _error(check: str, path: str | None, message: str) -> Finding:
    return Finding(severity=ERROR, check=check, path=path, message=message)


def _note(check: str, path: str | None, message: str) -> Finding:
    return Finding(severity=NOTE, check=check, path=path, message=message)


def _short(digest: str) -> str:
    return digest[:16] + "..." if digest else "(none)"


# --------------------------------------------------------------------------- integrity


def _describe(f: ScannedFile) -> str:
    if f.kind == "symlink":
        return f"symlink to {f.target!r}"
    if f.kind == "special":
        return f.special or "special file"
    return "regular file"


def integrity(tree: Tree, manifest: Manifest) -> list[Finding]:
    """Compare every scanned file with the manifest's list (sha256, mode, kind)."""
    out: list[Finding] = []
    expected = {e.path: e for e in manifest.files}
    for path, e in expected.items():
        f = tree.files.get(path)
        if f is None:
            if path in tree.dirs:
                out.append(_error(INTEGRITY, path, f"a directory has taken the place of this "
                                                   f"{'symlink' if e.kind == 'symlink' else 'file'}"))
            else:
                out.append(_error(INTEGRITY, path, "missing (listed in the manifest)"))
            continue
        if e.kind == "symlink":
            if f.kind != "symlink":
                out.append(_error(INTEGRITY, path, f"replaced by a {_describe(f)}; the manifest "
                                                   f"lists a symlink to {e.target!r}"))
            elif f.problem:
                out.append(_error(INTEGRITY, path, f.problem))
            elif f.sha256 != e.sha256:
                out.append(_error(INTEGRITY, path, f"symlink now points to {f.target!r}; the "
                                                   f"manifest says {e.target!r}"))
            continue
        if f.kind != "file":
            out.append(_error(INTEGRITY, path, f"replaced by a {_describe(f)}; the manifest "
                                               "lists a regular file"))
            continue
        if not f.sha256:
            out.append(_error(INTEGRITY, path, f.problem or "cannot be read"))
            continue
        if f.sha256 != e.sha256:
            sizes = "" if f.size == e.size else f"; size {f.size} bytes, the manifest says {e.size}"
            out.append(_error(INTEGRITY, path, f"content changed: sha256 {_short(f.sha256)}, the "
                                               f"manifest says {_short(e.sha256)}{sizes}"))
        if f.mode != e.mode:
            out.append(_error(INTEGRITY, path, f"mode {f.mode:04o}, the manifest says "
                                               f"{e.mode:04o}"))
    for path, f in tree.files.items():
        if path not in expected:
            what = "file" if f.kind == "file" else _describe(f)
            out.append(_error(INTEGRITY, path, f"extra {what}, not in the manifest"))
    return out


# --------------------------------------------------------------------------- relocation


@dataclass(frozen=True, kw_only=True, slots=True)
class Needle:
    """A string that must not occur in a relocatable bundle, and what it stands for."""

    text: str
    what: str
    source_prefix: bool  # a prefix of the interpreter's source installation


def needles_of(manifest: Manifest | None, default_marker: str) -> tuple[Needle, ...]:
    if manifest is None:
        return needles_for(default_marker, ())
    return needles_for(manifest.build_marker, manifest.source_prefixes)


def needles_for(marker: str, source_prefixes: Iterable[str]) -> tuple[Needle, ...]:
    """The build marker, then each source prefix that is more than '/'."""
    out = [Needle(text=marker, what=f"the build directory (marker {marker!r})",
                  source_prefix=False)]
    for prefix in source_prefixes:
        if prefix.strip("/"):
            out.append(Needle(text=prefix, what=f"the build host's interpreter prefix {prefix}",
                              source_prefix=True))
    return tuple(out)


def _text_kind(path: str) -> str:
    parent, _, name = path.rpartition("/")
    if name.endswith(".pth"):
        return ".pth file (run at every start)"
    if name == "RECORD" and parent.endswith(".dist-info"):
        return "RECORD"
    if name == "direct_url.json":
        return "direct_url.json"
    if name.startswith("_sysconfigdata") and name.endswith(".py"):
        return "_sysconfigdata"
    if name.endswith(".pyc"):
        return "byte code"
    if name.endswith(".pc"):
        return "pkg-config file"
    if name.endswith("-config"):
        return "config script"
    return "file"


def _section_at(sections: Sequence[tuple[str, int, int]], offset: int) -> str | None:
    for name, start, size in sections:
        if start <= offset < start + size:
            return name
    return None


def _is_interpreter(path: str, layout: Layout | None) -> bool:
    name = path.rpartition("/")[2]
    return (layout is not None and path == layout.executable) or (
        name.startswith("libpython") and ".so" in name)


def _expand_origin(rel: str, entry: str) -> str | None:
    """A ``$ORIGIN`` entry of the file ``rel`` as a bundle-relative directory (``..`` when it
    leaves the bundle); None when the entry is not ``$ORIGIN``-relative."""
    return expand_origin(entry, posixpath.dirname(rel))


def _rpath_findings(f: ScannedFile) -> list[Finding]:
    out: list[Finding] = []
    if f.elf is None:
        return out
    for tag, entries in (("RPATH", f.elf.rpath), ("RUNPATH", f.elf.runpath)):
        for entry in entries:
            d = _expand_origin(f.path, entry)
            if d is None:
                out.append(_error(RELOCATION, f.path, f"{tag} entry {entry!r} is not "
                                  "$ORIGIN-relative: the loader searches that directory on "
                                  "whatever host runs the bundle"))
            elif leaves_root(d):
                out.append(_error(RELOCATION, f.path, f"{tag} entry {entry!r} leads outside "
                                                      "the bundle"))
    return out


def _elf_hit_findings(f: ScannedFile, needles: dict[str, Needle],
                      layout: Layout | None, landmark_ok: bool) -> list[Finding]:
    out: list[Finding] = []
    sections = f.sections
    used = (*f.elf.rpath, *f.elf.runpath, *f.elf.needed, f.elf.soname or "") if f.elf else ()
    for hit in f.hits:
        needle = needles[hit.needle]
        where: dict[str, set[str]] = {}  # reason -> section names
        classified = len(hit.offsets)
        for offset in hit.offsets:
            section = _section_at(sections, offset)
            if section == ".dynstr":
                if any(needle.text in u for u in used):
                    continue  # a live RPATH/NEEDED: reported by its own finding
                where.setdefault("dynstr", set()).add(section)
            elif section is not None and section.startswith(_DEBUG_SECTIONS):
                where.setdefault("debug", set()).add(section)
            else:
                where.setdefault("code", set()).add(section or "outside any section")
        if hit.count > classified:  # not located: assume the worst
            where.setdefault("code", set()).add(f"{hit.count - classified} more occurrences")
        sample = f"{hit.sample!r}"
        if "dynstr" in where:
            out.append(_note(RELOCATION, f.path, f"names {needle.what} in .dynstr ({sample}), "
                             "but no dynamic tag refers to it (a leftover, e.g. of an RPATH "
                             "rewrite), so the dynamic loader never reads it"))
        if "debug" in where:
            out.append(_note(RELOCATION, f.path, f"names {needle.what} in debug information "
                             f"({', '.join(sorted(where['debug']))}), which is not used at run "
                             "time"))
        if "code" in where:
            sects = ", ".join(sorted(where["code"]))
            if needle.source_prefix and _is_interpreter(f.path, layout) and landmark_ok:
                assert layout is not None
                out.append(_note(RELOCATION, f.path, f"compiled-in fallback prefix "
                                 f"{needle.text} ({sects}): CPython uses it only when it cannot "
                                 f"find its landmark {layout.landmark} next to the executable, "
                                 "and this bundle has it"))
            else:
                out.append(_error(RELOCATION, f.path, f"ELF data ({sects}) holds "
                                  f"{needle.what} ({sample}); code may use it at run time"))
    return out


def _tidy(sample: str, kind: str) -> str:
    """A byte-code sample without the marshal bytes that happen to be printable around it."""
    if kind == "byte code":
        slash = sample.find("/")
        if 0 < slash <= 2:
            sample = sample[slash:]  # the string's type code and length byte
        sample = re.sub(r"(\.py)[^/.]$", r"\1", sample)  # the next object's type code
    return sample


def relocation(tree: Tree, needles: Sequence[Needle], layout: Layout | None) -> list[Finding]:
    """Build paths in any file, and RPATH/RUNPATH entries that break on a move."""
    by_text = {n.text: n for n in needles}
    landmark_ok = layout is not None and layout.landmark in tree.files and (
        f"{layout.stdlib}/lib-dynload" in tree.dirs)
    out: list[Finding] = []
    for f in tree.files.values():
        if f.elf is not None:
            out.extend(_rpath_findings(f))
        if not f.hits:
            continue
        if f.is_elf:
            out.extend(_elf_hit_findings(f, by_text, layout, landmark_ok))
            continue
        for hit in f.hits:
            needle = by_text[hit.needle]
            in_shebang = f.shebang_end >= 0 and hit.offsets[0] < f.shebang_end
            kind = "shebang" if in_shebang else _text_kind(f.path)
            times = f" ({hit.count} occurrences)" if hit.count > 1 else ""
            out.append(_error(RELOCATION, f.path, f"{kind} names {needle.what}: "
                                                  f"{_tidy(hit.sample, kind)!r}{times}"))
    return out


# --------------------------------------------------------------------------- ELF closure


def _resolve(tree: Tree, links: Mapping[str, str], rel_dir: str, soname: str
             ) -> tuple[str | None, str]:
    """(bundle-relative real path, "") of ``rel_dir/soname``, or (None, why not); symlinks
    are resolved from the scan (``links``), so a tree read from an archive resolves alike."""
    candidate = posixpath.normpath(posixpath.join(rel_dir, soname))
    real, why = resolve(candidate, links)
    if real is None:
        if why == OUTSIDE:
            return None, f"{posixpath.join(rel_dir, soname)} resolves outside the bundle"
        return None, f"{posixpath.join(rel_dir, soname)} is a symlink loop"
    found = tree.files.get(real)
    if found is None and real not in tree.dirs and candidate not in tree.files:
        return None, ""  # nothing there
    if found is None or found.kind != "file" or not found.is_elf:
        return None, f"{posixpath.join(rel_dir, soname)} is not an ELF file"
    return real, ""


def elf_closure(tree: Tree, manifest: Manifest | None, allowlist: AllowList
                ) -> tuple[list[Finding], tuple[Floor, ...]]:
    """Every DT_NEEDED resolves inside, is allow-listed or is declared host-provided."""
    out: list[Finding] = []
    host_libs = {str(h.get("soname", "")) for h in manifest.elf.host_libraries} \
        if manifest is not None else set()
    links = {f.path: f.target for f in tree.files.values()
             if f.kind == "symlink" and f.target is not None}
    elves = [f for f in tree.files.values() if f.kind == "file" and f.is_elf]
    where: dict[str, list[str]] = {}  # file name or soname -> bundle paths
    for f in elves:
        where.setdefault(f.path.rpartition("/")[2], []).append(f.path)
        if f.elf is not None and f.elf.soname:
            where.setdefault(f.elf.soname, []).append(f.path)
    parsed: list[ElfFile] = []
    for f in elves:
        if f.elf is None:
            out.append(_error(ELF, f.path, f"cannot be read as an ELF file: {f.problem}"))
            continue
        parsed.append(f.elf)
        dirs = [d for d in (_expand_origin(f.path, e) for e in (*f.elf.rpath, *f.elf.runpath))
                if d is not None and not leaves_root(d)]
        for soname in f.elf.needed:
            if allowlist.allows(soname) or soname in host_libs:
                continue
            if "/" in soname:
                out.append(_error(ELF, f.path, f"needs {soname!r} by path, which cannot move "
                                               "with the bundle"))
                continue
            problems: list[str] = []
            target = None
            for d in dirs:
                target, why = _resolve(tree, links, d, soname)
                if target is not None:
                    break
                if why:
                    problems.append(why)
            if target is not None:
                other = tree.files[target].elf
                if other is not None and other.machine != f.elf.machine:
                    out.append(_error(ELF, f.path, f"needs {soname}, but {target} is built for "
                                                   f"{other.machine}, not {f.elf.machine}"))
                continue
            search = ":".join((*f.elf.rpath, *f.elf.runpath)) or "none"
            elsewhere = sorted(set(where.get(soname, ())) - {f.path})
            if problems:
                detail = "; ".join(problems)
            elif elsewhere:
                detail = (f"the bundle has {', '.join(elsewhere)}, but not on this file's "
                          f"RPATH ({search})")
            else:
                detail = (f"it is not in the bundle (RPATH: {search}), not on the allow-list "
                          "and not a declared host library")
            out.append(_error(ELF, f.path, f"needs {soname}: {detail}"))
    found = highest_floors(file_floors(parsed, tree.root))
    if manifest is not None:
        out += _floor_findings(found, manifest)
    return out, found


def _floor_findings(found: tuple[Floor, ...], manifest: Manifest) -> list[Finding]:
    """The floors the ELF files set against those the manifest recorded."""
    out: list[Finding] = []
    kinds = floors.KIND_NAMES if manifest.elf.floors else ("glibc",)  # older manifests
    for kind_name in kinds:
        floor = next((f for f in found if f.kind == kind_name), None)
        recorded = manifest.elf.floor(kind_name)
        said = recorded.version if recorded else None
        k = floors.kind(kind_name)
        if floor is not None and (said is None or floors.exceeds(floor.version, said)):
            out.append(_error(ELF, floor.file, f"needs {k.library} {floor.version} "
                                               f"({floor.symbol}), but the manifest says the "
                                               f"floor is {said}"))
        elif said is not None and (floor is None or floors.exceeds(said, floor.version)):
            now = floor.version if floor else "none"
            out.append(_note(ELF, None, f"the manifest's {k.library} floor is {said}, but the "
                                        f"ELF files need only {now}"))
    return out


def host_libraries(tree: Tree, manifest: Manifest, host: HostProfile) -> list[Finding]:
    """Per host library the runtime declares: provided at or above the floor its files
    need (read from the files, not the manifest), too old, or absent on ``host``. Only a
    ``required`` one that is too old or absent is an error."""
    declared = [(h.soname, h.required, h.purpose, h.feature) for h in manifest.elf.host_floors]
    if not declared:  # a manifest without floors: the profile's declarations
        declared = [(str(h.get("soname", "?")), bool(h.get("required", True)),
                     str(h.get("purpose", "")), str(h.get("feature", "")))
                    for h in manifest.elf.host_libraries]
    sonames = {d[0] for d in declared}
    needs = [(f.path, soname, version)
             for f in tree.files.values() if f.elf is not None
             for soname in sorted(set(f.elf.needed) & sonames)
             for version in ([v for lib, v in f.elf.version_needs if lib == soname] or [""])]
    out: list[Finding] = []
    for floor in hostlibs.library_floors(declared, needs):
        v = hostlibs.verdict(floor, host.host_library(floor.soname))
        where = v.need_file
        if v.status == "provided":
            out.append(_note(HOST, where, f"host library {v.describe()} on {host.id}"))
        elif v.status == "unused":
            out.append(_note(HOST, None, f"host library {v.describe()}"))
        elif v.required:
            out.append(_error(HOST, where, f"required host library {v.describe()} on "
                                           f"{host.id}"))
        else:
            out.append(_note(HOST, where, f"{v.unavailable()} on {host.id}"))
    return out


def host_compat(host: HostProfile, found: tuple[Floor, ...], arch: str | None) -> list[Finding]:
    """Can this bundle's ELF files run on ``host``? libc family, the floors (glibc,
    libstdc++, libgcc_s: the rule ``isolate.compat`` shares with prediction), machine."""
    from isolate import compat  # only with a host profile: it imports packaging

    out: list[Finding] = []
    glibc = next((f for f in found if f.kind == "glibc"), None)
    needs = f" (it needs glibc {glibc.version}, set by {glibc.file})" if glibc else ""
    if host.libc.family != "glibc":
        out.append(_error(HOST, None, f"host {host.id} has {host.libc.family} libc "
                                      f"{host.libc.version}; this bundle is linked against "
                                      f"glibc{needs} and cannot run there"))
    else:
        for s in compat.shortfalls(host, found):
            k = floors.kind(s.need.kind)
            if s.need.kind == "glibc":
                out.append(_error(HOST, s.need.file, f"needs glibc {s.need.version} "
                                                     f"({s.need.symbol}); host {host.id} has "
                                                     f"glibc {host.libc.version}"))
            elif s.host_has is None:
                out.append(_note(HOST, s.need.file, f"needs {k.library} {s.need.symbol}; the "
                                                    f"profile of host {host.id} does not say "
                                                    "which versions it ships"))
            else:
                out.append(_error(HOST, s.need.file, f"needs {k.library} {s.need.symbol}; host "
                                                     f"{host.id} ships up to "
                                                     f"{k.prefix}{s.host_has}"))
    if arch is not None and arch != host.arch:
        out.append(_error(HOST, None, f"the bundle is built for {arch}; host {host.id} is "
                                      f"{host.arch}"))
    return out


def elf_arch(files: Iterable[ScannedFile]) -> str | None:
    """The machine of the bundle's ELF files (the first one read)."""
    for f in files:
        if f.elf is not None:
            return f.elf.machine
    return None
