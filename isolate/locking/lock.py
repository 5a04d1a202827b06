"""Make and check the locks of a runtime profile.

Two files per profile, resolved together so that versions agree:

- ``constraints/<name>.txt``: the runtime's own distributions (what the bundle ships);
- ``constraints/<name>-tests.txt``: what the tests need on top (the test overlay).

The runtime and its test requirements are resolved as one set first; the runtime lock
is then resolved alone, seeded with those pins, so it keeps the same versions.

Both backends write the same format: pip-compile's hashed requirements, with ``# via``
annotations that isolate brings to one form (:func:`canonical_block`), so relocking with
the other backend changes only the header line that names it.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.utils import canonicalize_name

from isolate.errors import InputError, ResolutionError
from isolate.fsutil import temp_dir, write_atomic
from isolate.locking.backends import Backend, CompileRequest, IndexOptions
from isolate.model.lock import (
    LockFile,
    LockHeader,
    LockInputs,
    Pin,
    parse_lock,
    render_body,
    summary_lines,
)
from isolate.profiles import LoadedRuntime

PLATFORM = "linux"


@dataclass(frozen=True, kw_only=True, slots=True)
class LockPaths:
    runtime: Path
    tests: Path


@dataclass(frozen=True, kw_only=True, slots=True)
class LockResult:
    paths: LockPaths
    runtime_pins: int
    test_pins: int
    changed: tuple[str, ...]  # lines of a diff against the previous lock


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    """What ``check`` found. ``resolved_by`` is the backend that made the fresh
    resolution and ``pins`` how many pins (runtime and tests) it matched; empty and 0
    when no resolution ran."""

    fresh: bool
    problems: tuple[str, ...] = ()
    diff: tuple[str, ...] = field(default=())
    resolved_by: str = ""
    pins: int = 0


_VIA_ONE = re.compile(r"^\s+# via (\S.*)$")
_VIA_MANY = re.compile(r"^\s+# via$")
_VIA_ITEM = re.compile(r"^\s+#   (\S.*)$")


def canonical_block(pin: Pin) -> Pin:
    """``pin`` with its ``# via`` annotation in the one form both backends share.

    pip-tools names a distribution among its own sources when one of its extras
    depends on it (``oslo-service`` via ``oslo-service``); uv does not. That entry says
    nothing about the lock, so it goes. The requirement and hash lines are kept as
    written."""
    kept: list[str] = []
    via: list[str] = []
    in_via = False
    for line in pin.text.splitlines():
        if in_via and (m := _VIA_ITEM.match(line)):
            via.append(m.group(1).strip())
            continue
        in_via = False
        if m := _VIA_ONE.match(line):
            via.append(m.group(1).strip())
        elif _VIA_MANY.match(line):
            in_via = True
        else:
            kept.append(line)
    via = [v for v in via if canonicalize_name(v) != pin.name]
    if len(via) == 1:
        kept.append(f"    # via {via[0]}")
    elif via:
        kept += ["    # via", *(f"    #   {v}" for v in via)]
    return replace(pin, text="\n".join(kept) + "\n")


def lock_inputs(loaded: LoadedRuntime, kind: str) -> LockInputs:
    p = loaded.profile
    cpath = loaded.constraints_path
    csha = None
    if cpath is not None:
        try:
            csha = hashlib.sha256(cpath.read_bytes()).hexdigest()
        except OSError as exc:
            raise InputError(
                f"{loaded.path}: constraints file {cpath} cannot be read: {exc.strerror}",
                hint="fix the 'constraints' key or add the file",
            ) from exc
    return LockInputs(
        profile=p.name,
        kind=kind,
        python=p.python,
        arch=p.arch,
        glibc=p.glibc,
        requirements=p.requirements,
        test_requirements=p.tests.requirements,
        constraints_sha256=csha,
    )


def read_lock(path: Path) -> LockFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(
            f"lock {path} does not exist",
            hint=f"run `isolate lock {path.stem.removesuffix('-tests')}` to create it",
        ) from exc
    try:
        return parse_lock(text)
    except ValueError as exc:
        raise InputError(f"{path}: not a valid lock: {exc}",
                         hint="regenerate it with `isolate lock`") from exc


def _write_inputs(work: Path, loaded: LoadedRuntime) -> tuple[Path, Path]:
    p = loaded.profile
    cpath = loaded.constraints_path
    lines = list(p.requirements)
    if cpath is not None:
        lines.insert(0, f"-c {cpath}")
    runtime_in = work / f"{p.name}.in"
    runtime_in.write_text("\n".join(lines) + "\n")
    combined_in = work / f"{p.name}-with-tests.in"
    combined_in.write_text("\n".join([f"-r {runtime_in.name}", *p.tests.requirements]) + "\n")
    return runtime_in, combined_in


def _resolve(
    loaded: LoadedRuntime,
    backend: Backend,
    index: IndexOptions,
    work: Path,
    seed: list[Path],
    *,
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
    build_env: Mapping[str, str] | None = None,
    at_once: bool = False,
) -> tuple[list[Pin], list[Pin], list[Pin]]:
    """Resolve runtime + tests in ``work``; return (runtime pins, test-only pins, the
    pins of runtime and tests resolved together).

    The runtime alone is seeded with the pins of the resolution together, so it keeps
    their versions. ``at_once`` (for a check, where the seed is the committed lock, which
    was made that way): both resolutions start at once, both seeded with ``seed``."""
    p = loaded.profile
    runtime_in, combined_in = _write_inputs(work, loaded)
    combined_out = work / f"{p.name}-with-tests.txt"
    # Seed with versions only: the resolver keeps them where they still fit, and hashes
    # come fresh from the index (a hand-edited hash must not poison the resolution).
    combined_out.write_text("".join(f"{pin.key}\n" for s in seed if s.exists()
                                    for pin in read_lock(s).pins))
    def request(src: Path, out: Path, **upgrades: object) -> CompileRequest:
        return CompileRequest(profile=p.name, requirements_in=src, output=out,
                              python=p.python_tuple, arch=p.arch, glibc=p.glibc, index=index,
                              upgrade=upgrade and bool(upgrades),
                              upgrade_packages=upgrade_packages if upgrades else (),
                              build_env=dict(build_env or {}))

    runtime_out = work / f"{p.name}.txt"
    if at_once:
        shutil.copyfile(combined_out, runtime_out)
        with ThreadPoolExecutor(max_workers=2) as pool:
            both = [pool.submit(backend.compile, request(combined_in, combined_out, first=True)),
                    pool.submit(backend.compile, request(runtime_in, runtime_out))]
            for future in both:
                future.result()
    else:
        backend.compile(request(combined_in, combined_out, first=True))
        shutil.copyfile(combined_out, runtime_out)
        backend.compile(request(runtime_in, runtime_out))
    try:
        combined = parse_lock(combined_out.read_text()).pins
        runtime = list(parse_lock(runtime_out.read_text()).pins)
    except ValueError as exc:
        raise ResolutionError(f"the resolver wrote a lock isolate cannot read: {exc}",
                              hint="report this with the resolver's version") from exc
    names = {pin.name for pin in runtime}
    tests = [pin for pin in combined if pin.name not in names]
    return runtime, tests, list(combined)


def _render(loaded: LoadedRuntime, kind: str, pins: list[Pin], backend: Backend,
            profile_path: str) -> str:
    header = LockHeader(
        inputs=lock_inputs(loaded, kind),
        profile_path=profile_path,
        profile_sha256=loaded.sha256,
        backend=backend.describe(),
        platform=f"{PLATFORM} {loaded.profile.arch}",
    )
    return header.render() + render_body(canonical_block(pin) for pin in pins)


def lock(
    loaded: LoadedRuntime,
    backend: Backend,
    index: IndexOptions,
    *,
    out_dir: Path,
    seed_dir: Path | None,
    profile_path: str,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
    build_env: Mapping[str, str] | None = None,
) -> LockResult:
    """Resolve and write both locks; nothing is written unless both resolutions succeed."""
    name = loaded.profile.name
    paths = LockPaths(runtime=out_dir / f"{name}.txt", tests=out_dir / f"{name}-tests.txt")
    previous = [] if seed_dir is None else [seed_dir / f"{name}.txt",
                                            seed_dir / f"{name}-tests.txt"]
    previous = [p for p in previous if p.exists()]
    seeds = [] if upgrade else previous
    old = [line for s in previous for line in summary_lines(read_lock(s).pins)]
    with temp_dir(prefix="isolate-lock-") as work:
        runtime, tests, _ = _resolve(loaded, backend, index, work, seeds,
                                  upgrade=upgrade, upgrade_packages=upgrade_packages,
                                  build_env=build_env)
        runtime_text = _render(loaded, "runtime", runtime, backend, profile_path)
        tests_text = _render(loaded, "tests", tests, backend, profile_path)
    write_atomic(paths.runtime, runtime_text)
    write_atomic(paths.tests, tests_text)
    new = summary_lines(runtime) + summary_lines(tests)
    changed = tuple(_pin_diff(sorted(old), sorted(new)))
    return LockResult(paths=paths, runtime_pins=len(runtime), test_pins=len(tests),
                      changed=changed)


def _pin_diff(old: list[str], new: list[str]) -> list[str]:
    short_old = [line.split(" ", 1)[0] for line in old]
    short_new = [line.split(" ", 1)[0] for line in new]
    out = [d for d in difflib.unified_diff(short_old, short_new, "committed", "resolved",
                                           lineterm="", n=0)
           if not d.startswith("@@")]
    if not out and old != new:
        out = [d for d in difflib.unified_diff(old, new, "committed", "resolved",
                                               lineterm="", n=0) if not d.startswith("@@")]
    return out


def check(
    loaded: LoadedRuntime,
    backend: Backend,
    index: IndexOptions,
    *,
    lock_dir: Path,
    resolve: bool = True,
    build_env: Mapping[str, str] | None = None,
) -> CheckResult:
    """Is the committed lock still what the profile asks for?

    First without network: the inputs recorded in each lock's header against the
    profile's (requirements, test requirements, Python, arch, glibc floor, the
    constraints file's sha256). Then, unless ``resolve`` is false, ``backend`` resolves
    the profile afresh, seeded with the committed versions (never their hashes): the
    runtime with its tests, and the runtime alone, at once. Together they must give
    exactly the committed runtime and tests pins, and alone exactly the runtime's: the
    same set of ``name==version`` pins, each with exactly the same set of hashes. That
    proves the committed pins still satisfy the requirements together, that the resolver
    would keep every one of them, and that the hashes are those of every file the index
    serves for each version now. Annotations and the
    header's comment lines are not compared, so a lock made by one backend checks
    fresh with the other when they agree on pins and hashes. It does not prove the pins
    are the newest: ``isolate lock --upgrade`` moves them.
    """
    name = loaded.profile.name
    runtime_path, tests_path = lock_dir / f"{name}.txt", lock_dir / f"{name}-tests.txt"
    problems: list[str] = []
    locks: dict[str, LockFile] = {}
    for kind, path in (("runtime", runtime_path), ("tests", tests_path)):
        lf = read_lock(path)
        locks[kind] = lf
        want = lock_inputs(loaded, kind)
        if lf.inputs is None or lf.inputs_sha256 is None:
            problems.append(f"{path}: has no isolate header; it was not made by `isolate lock`")
        elif lf.inputs_sha256 != want.sha256 or lf.inputs != want:
            problems.append(f"{path}: the profile changed since the lock was made:")
            problems += [f"  {line}" for line in want.describe_changes(lf.inputs)]
    if problems or not resolve:
        return CheckResult(fresh=not problems, problems=tuple(problems))
    with temp_dir(prefix="isolate-check-") as work:
        runtime, tests, together = _resolve(
            loaded, backend, index, work, [runtime_path, tests_path], upgrade=False,
            upgrade_packages=(), build_env=build_env, at_once=True)
    old = sorted(summary_lines(locks["runtime"].pins) + summary_lines(locks["tests"].pins))
    new = sorted(summary_lines(runtime) + summary_lines(tests))
    whole = sorted(summary_lines(together))
    by = backend.describe()
    if old == new == whole:
        return CheckResult(fresh=True, resolved_by=by, pins=len(new))
    diff = tuple(_pin_diff(old, new) or _pin_diff(old, whole))
    return CheckResult(
        fresh=False,
        problems=(f"{runtime_path}: a fresh resolution of the profile by {by} gives other "
                  "pins",),
        diff=diff,
        resolved_by=by,
        pins=len(new),
    )
