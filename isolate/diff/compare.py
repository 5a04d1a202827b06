"""Compare two manifests (pure): distributions, interpreter, floors, vendored libraries,
launchers, files per owner with a size delta, and the test overlay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from isolate.diff.load import BundleView
from isolate.model.manifest import FileEntry, Manifest

SCHEMA = "isolate.diff/1"


@dataclass(frozen=True, kw_only=True, slots=True)
class Changed:
    what: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "old": self.old, "new": self.new}


@dataclass(frozen=True, kw_only=True, slots=True)
class FileCounts:
    owner: str  # a distribution, "interpreter", "launchers", "vendored libraries", "other"
    added: int = 0
    removed: int = 0
    changed: int = 0
    size_delta: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "added": self.added, "removed": self.removed,
                "changed": self.changed, "size_delta": self.size_delta}


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleDiff:
    old: str  # bundle names
    new: str
    distributions_added: tuple[tuple[str, str, str], ...] = ()  # (name, version, sha256)
    distributions_removed: tuple[tuple[str, str, str], ...] = ()
    distributions_changed: tuple[Changed, ...] = ()  # what=name, old/new=(version, sha256)
    interpreter: tuple[Changed, ...] = ()
    floors: tuple[Changed, ...] = ()
    vendored: tuple[Changed, ...] = ()  # what=soname, old/new = sha256 or None
    launchers_added: tuple[str, ...] = ()
    launchers_removed: tuple[str, ...] = ()
    files: tuple[FileCounts, ...] = ()
    tests_overlay: tuple[Changed, ...] = ()
    inputs: tuple[Changed, ...] = field(default=())  # lock and profile hashes

    @property
    def identical(self) -> bool:
        return not any((self.distributions_added, self.distributions_removed,
                        self.distributions_changed, self.interpreter, self.floors,
                        self.vendored, self.launchers_added, self.launchers_removed,
                        self.files, self.tests_overlay, self.inputs))

    def to_dict(self) -> dict[str, Any]:
        def dist(t: tuple[str, str, str]) -> dict[str, str]:
            return {"name": t[0], "version": t[1], "sha256": t[2]}

        return {
            "schema": SCHEMA, "old": self.old, "new": self.new, "identical": self.identical,
            "distributions": {
                "added": [dist(d) for d in self.distributions_added],
                "removed": [dist(d) for d in self.distributions_removed],
                "changed": [{"name": c.what, "old": {"version": c.old[0], "sha256": c.old[1]},
                             "new": {"version": c.new[0], "sha256": c.new[1]}}
                            for c in self.distributions_changed]},
            "interpreter": [c.to_dict() for c in self.interpreter],
            "floors": [c.to_dict() for c in self.floors],
            "vendored_libraries": [c.to_dict() for c in self.vendored],
            "launchers": {"added": list(self.launchers_added),
                          "removed": list(self.launchers_removed)},
            "files": [f.to_dict() for f in self.files],
            "tests_overlay": {"changed": bool(self.tests_overlay),
                              "changes": [c.to_dict() for c in self.tests_overlay]},
            "inputs": [c.to_dict() for c in self.inputs],
        }


def _changes(pairs: list[tuple[str, Any, Any]]) -> tuple[Changed, ...]:
    return tuple(Changed(what=w, old=o, new=n) for w, o, n in pairs if o != n)


def _host_libraries(m: Manifest) -> dict[str, str]:
    return {str(h.get("soname")): "required" if h.get("required", True) else "optional"
            for h in m.elf.host_libraries}


class _Owners:
    """Which part of a bundle a file belongs to."""

    def __init__(self, view: BundleView):
        m = view.manifest
        self.owners = dict(view.owners)
        self.site = m.interpreter.site_packages.rstrip("/") + "/"
        self.interp = m.interpreter.executable.split("/", 1)[0] + "/"
        self.dists = {canonicalize_name(d.name) for d in m.distributions}
        self.vendored = {v.path for v in m.elf.vendored}

    def of(self, path: str) -> str:
        if path in self.owners:
            return self.owners[path]
        if path.startswith(self.site):
            top = path[len(self.site):].split("/", 1)[0]
            for suffix in (".dist-info", ".data"):
                if top.endswith(suffix):
                    return canonicalize_name(top.removesuffix(suffix).rsplit("-", 1)[0])
            name = canonicalize_name(top.removesuffix(".py").split(".", 1)[0])
            return name if name in self.dists else "site-packages (unowned)"
        if path in self.vendored or path.startswith("lib/"):
            return "vendored libraries"
        if path.startswith("bin/"):
            return "launchers"
        if path.startswith(self.interp):
            return "interpreter"
        return "other"


def _files(old: BundleView, new: BundleView) -> tuple[FileCounts, ...]:
    a = {f.path: f for f in old.manifest.files}
    b = {f.path: f for f in new.manifest.files}
    own_old, own_new = _Owners(old), _Owners(new)
    counts: dict[str, dict[str, int]] = {}

    def add(owner: str, key: str, delta: int) -> None:
        c = counts.setdefault(owner, {"added": 0, "removed": 0, "changed": 0, "size_delta": 0})
        c[key] += 1
        c["size_delta"] += delta

    for path in sorted(a.keys() | b.keys()):
        fa: FileEntry | None = a.get(path)
        fb: FileEntry | None = b.get(path)
        if fa is None and fb is not None:
            add(own_new.of(path), "added", fb.size)
        elif fb is None and fa is not None:
            add(own_old.of(path), "removed", -fa.size)
        elif fa is not None and fb is not None and (fa.sha256, fa.mode, fa.kind) != (
                fb.sha256, fb.mode, fb.kind):
            add(own_new.of(path), "changed", fb.size - fa.size)
    return tuple(FileCounts(owner=o, **c) for o, c in sorted(counts.items()))


def compare(old: BundleView, new: BundleView) -> BundleDiff:
    a, b = old.manifest, new.manifest
    da = {canonicalize_name(d.name): d for d in a.distributions}
    db = {canonicalize_name(d.name): d for d in b.distributions}
    sha_a = {f.path: f.sha256 for f in a.files}
    sha_b = {f.path: f.sha256 for f in b.files}
    va = {v.soname: sha_a.get(v.path) for v in a.elf.vendored}
    vb = {v.soname: sha_b.get(v.path) for v in b.elf.vendored}
    ha, hb = _host_libraries(a), _host_libraries(b)
    return BundleDiff(
        old=a.name, new=b.name,
        distributions_added=tuple((d.name, d.version, d.sha256)
                                  for n, d in sorted(db.items()) if n not in da),
        distributions_removed=tuple((d.name, d.version, d.sha256)
                                    for n, d in sorted(da.items()) if n not in db),
        distributions_changed=_changes([
            (db[n].name, (da[n].version, da[n].sha256), (db[n].version, db[n].sha256))
            for n in sorted(da.keys() & db.keys())]),
        interpreter=_changes([("version", a.interpreter.version, b.interpreter.version),
                              ("python_tag", a.python_tag, b.python_tag),
                              ("source", a.interpreter.source, b.interpreter.source),
                              ("isolated", a.interpreter.isolated, b.interpreter.isolated)]),
        floors=_changes([
            ("glibc", a.elf.glibc_floor, b.elf.glibc_floor),
            ("platform", a.platform, b.platform),
            *((f"host library {s}", ha.get(s), hb.get(s)) for s in sorted(ha.keys() | hb.keys())),
            ("system libraries", sorted(a.elf.system_libraries), sorted(b.elf.system_libraries)),
        ]),
        vendored=_changes([(s, va.get(s), vb.get(s)) for s in sorted(va.keys() | vb.keys())]),
        launchers_added=tuple(sorted(set(b.scripts) - set(a.scripts))),
        launchers_removed=tuple(sorted(set(a.scripts) - set(b.scripts))),
        files=_files(old, new),
        tests_overlay=_changes([("test lock", a.test_lock_sha256, b.test_lock_sha256),
                                ("test command", list(a.test_command), list(b.test_command)),
                                ("test env", dict(a.test_env), dict(b.test_env))]),
        inputs=_changes([("lock sha256", a.lock_sha256, b.lock_sha256),
                         ("runtime", a.runtime, b.runtime)]),
    )
