"""The checks that start the bundled interpreter: isolation and the import smoke test.

Both run through ``isolate.proc.Runner`` with an explicit environment, ``-B`` (so that
verifying never writes byte code into the bundle being verified) and a working directory
of their own, outside the bundle.

Isolation
    ``bin/python3`` is started in interactive mode (so that ``PYTHONSTARTUP`` *would*
    run) in the hostile environment of ``isolate.hostile_env`` (``PYTHONPATH``,
    ``PYTHONHOME``, ``PYTHONSTARTUP``, a user site, a working directory, each with
    modules that shadow the standard library and write a marker file when they run).
    The probe imports the shadowed modules and reports ``sys.path``, the prefixes and
    the file of every module it loaded; all must lie inside the bundle and no marker may
    exist. What the runtime starts in turn is ``isolate.verify.children``'s check.

Import smoke
    The top-level modules of every shipped distribution (``top_level.txt``, else the
    first components of ``RECORD``, keeping only modules the site-packages directory
    really holds) are imported in one process of the bundled interpreter
    (``-I -B -W ignore``), each in a ``try``. Results are streamed to a file, one JSON
    line per module, so a crash names the module that caused it; the remaining modules
    are then imported in a fresh process. A ``ModuleNotFoundError`` for a package the
    bundle does not contain at all, which the distribution does not require
    unconditionally, is a note (an optional dependency outside the lock); every other
    failure is an error.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from isolate import hostile_env
from isolate.model import tree
from isolate.proc import Runner
from isolate.verify.layout import Layout
from isolate.verify.report import ERROR, IMPORTS, ISOLATION, NOTE, Finding

ISOLATION_PROBE = "isolation_probe.py"  # run inside the bundle (CPython 3.8+)
IMPORT_PROBE = "import_probe.py"  # run inside the bundle (CPython 3.8+)
ISOLATION_TIMEOUT = 60.0
IMPORT_TIMEOUT = 300.0
_RESULT = "@@isolate-verify@@ "

# modules the probe imports, which the hostile environment shadows: standard-library ones
# (shadowed on PYTHONPATH and in the user site) and one only the working directory has
_SHADOWED_MODULES = (*(m for m in hostile_env.SHADOWED if m in ("base64", "colorsys", "quopri")),
                     hostile_env.CWD_PROBE)


def _source(name: str) -> str:
    """The text of a probe module of this package, which runs inside the bundle."""
    return importlib.resources.files("isolate.verify").joinpath(name).read_text(
        encoding="utf-8")


def _base_env(home: Path, tmp: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "TMPDIR": str(tmp), "LC_ALL": "C.UTF-8"}


# --------------------------------------------------------------------------- isolation


def isolation(root: Path, layout: Layout, runner: Runner) -> list[Finding]:
    """Start ``bin/python3`` in a hostile environment; prove that nothing outside leaks in."""
    launcher = root / layout.launcher
    if not launcher.is_file():
        return [Finding(severity=ERROR, check=ISOLATION, path=layout.launcher,
                        message="missing: the runtime cannot be started")]
    root_real = os.path.realpath(root)
    with tempfile.TemporaryDirectory(prefix="isolate-verify-isolation-") as tmp:
        hostile = hostile_env.plant(Path(tmp) / "hostile", versions=[layout.xy])
        env = {**_base_env(Path(tmp) / "home", Path(tmp)), **hostile.env}
        code = _source(ISOLATION_PROBE)
        line = (f"exec(compile({code!r}, '<isolate-verify>', 'exec')); "
                f"probe({_SHADOWED_MODULES!r}, {_RESULT!r})\n")
        done = runner.run([launcher, "-B", "-i"], env=env, cwd=hostile.cwd,
                          input=line, timeout=ISOLATION_TIMEOUT, check=False,
                          what="the isolation probe")
        ran = hostile.ran()
    out = [Finding(severity=ERROR, check=ISOLATION, path=None,
                   message=f"not isolated: {hostile_env.PLACES[place]}") for place in ran]
    data = None
    for text in done.stdout.splitlines():
        if text.startswith(_RESULT):
            data = json.loads(text[len(_RESULT):])
    if not done.ok or data is None:
        why = "timed out" if done.timed_out else f"exit code {done.returncode}"
        out.append(Finding(severity=ERROR, check=ISOLATION, path=layout.launcher,
                           message=f"did not start in a hostile environment ({why}): "
                                   f"{done.tail(8) or 'no output'}"))
        return out
    out.extend(_judge(data, root_real, layout))
    return out


def _judge(data: dict[str, Any], root_real: str, layout: Layout) -> list[Finding]:
    out: list[Finding] = []

    def error(message: str) -> None:
        out.append(Finding(severity=ERROR, check=ISOLATION, path=None, message=message))

    if not data.get("isolated"):
        error(f"{layout.launcher} does not start the interpreter in isolated mode (-I)")
    for entry in data.get("path") or []:
        if entry in ("", "."):
            error("sys.path holds the current directory")
        elif not tree.resolves_within(str(entry), root_real):
            error(f"sys.path holds {entry!r}, outside the bundle")
    for key in ("prefix", "base_prefix", "exec_prefix"):
        value = str(data.get(key))
        if not tree.resolves_within(value, root_real):
            error(f"sys.{key} is {value!r}, outside the bundle")
    modules = data.get("modules") or {}
    for name, file in modules.items():
        if name == hostile_env.CWD_PROBE:
            continue  # only the working directory has it: its marker tells
        if not isinstance(file, str) or not tree.resolves_within(file, root_real):
            error(f"`import {name}` loaded {file!r}, not the bundle's standard library")
    strays = [f for f in data.get("loaded") or [] if not tree.resolves_within(str(f), root_real)]
    if strays:
        more = f" and {len(strays) - 5} more" if len(strays) > 5 else ""
        error(f"modules were loaded from outside the bundle: {', '.join(strays[:5])}{more}")
    return out


# --------------------------------------------------------------------------- import smoke


@dataclass(frozen=True, kw_only=True, slots=True)
class Dist:
    name: str
    dist_info: str  # bundle-relative path of the .dist-info directory
    modules: tuple[str, ...]


_EXT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(?:[\w.-]+\.)?(?:so|pyd)$")


def _present(site: Path) -> set[str]:
    """Importable top-level names in ``site``: packages, modules, extension modules."""
    names: set[str] = set()
    try:
        entries = list(os.scandir(site))
    except OSError:
        return names
    for e in entries:
        n = e.name
        if e.is_dir():
            if n.isidentifier():
                names.add(n)
        elif n.endswith(".py") and n[:-3].isidentifier():
            names.add(n[:-3])
        else:
            m = _EXT.match(n)
            if m:
                names.add(m.group(1))
    return names


def _from_record(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        path = line.split(",", 1)[0].strip().strip('"')
        first = path.split("/", 1)[0]
        if not first or first.startswith("..") or first.endswith((".dist-info", ".data")):
            continue
        if "/" in path:
            out.append(first)
        elif first.endswith(".py"):
            out.append(first[:-3])
        else:
            m = _EXT.match(first)
            if m:
                out.append(m.group(1))
    return out


def distributions(root: Path, layout: Layout) -> list[Dist]:
    """The shipped distributions and the top-level modules each provides."""
    site = root / layout.site_packages
    present = _present(site)
    out: list[Dist] = []
    for info in sorted(site.glob("*.dist-info")):
        name = info.name[: -len(".dist-info")].split("-", 1)[0]
        top = info / "top_level.txt"
        try:
            if top.is_file():
                candidates = top.read_text(encoding="utf-8", errors="replace").split()
            else:
                candidates = _from_record((info / "RECORD").read_text(encoding="utf-8",
                                                                      errors="replace"))
        except OSError:
            candidates = []
        mods = tuple(dict.fromkeys(c.replace("/", ".") for c in candidates
                                   if c.split("/")[0] in present and
                                   all(p.isidentifier() for p in c.split("/"))))
        out.append(Dist(name=name, dist_info=info.relative_to(root).as_posix(), modules=mods))
    return out


def _declared(root: Path, dist: Dist, xy: str, version: str) -> tuple[set[str], set[str]]:
    """Canonical names ``dist`` requires for this Python without an extra, and all it names."""
    try:
        text = (root / dist.dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set(), set()
    env = {"python_version": xy, "python_full_version": version, "extra": ""}
    required: set[str] = set()
    named: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the headers
        if not line.startswith("Requires-Dist:"):
            continue
        try:
            req = Requirement(line.partition(":")[2].strip())
            named.add(canonicalize_name(req.name))
            if req.marker is None or req.marker.evaluate(env):
                required.add(canonicalize_name(req.name))
        except (InvalidRequirement, InvalidMarker, ValueError):
            continue
    return required, named


def _run_imports(python: Path, modules: Sequence[str], runner: Runner, tmp: Path
                 ) -> tuple[dict[str, dict[str, object]], str | None, str]:
    """(results by module, the module being imported when the process died, output tail)."""
    results_file = tmp / "results.jsonl"
    results_file.unlink(missing_ok=True)
    done = runner.run([python, "-I", "-B", "-W", "ignore", "-c", _source(IMPORT_PROBE),
                       results_file],
                      env=_base_env(tmp, tmp), cwd=tmp, input=json.dumps(list(modules)),
                      timeout=IMPORT_TIMEOUT, check=False, what="the import smoke test")
    results: dict[str, dict[str, object]] = {}
    started: str | None = None
    try:
        lines = results_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for text in lines:
        try:
            rec = json.loads(text)
        except ValueError:
            break
        if "start" in rec:
            started = str(rec["start"])
        else:
            results[str(rec["module"])] = rec
            started = None
    if done.ok and started is None and len(results) == len(modules):
        return results, None, ""
    why = "timed out" if done.timed_out else f"exit code {done.returncode}"
    culprit = started if started is not None else (
        next((m for m in modules if m not in results), None))
    return results, culprit, f"{why}: {done.tail(6) or 'no output'}"


def import_smoke(root: Path, layout: Layout, runner: Runner, *, version: str | None = None,
                 optional_host_libraries: Sequence[str] = ()) -> tuple[list[Finding], str]:
    """Import every top-level module of every shipped distribution; (findings, detail).

    A module that fails only because an optional host library (declared with
    ``required = false``) is not on this machine is a note, not an error."""
    python = root / layout.executable
    if not python.is_file():
        return [Finding(severity=ERROR, check=IMPORTS, path=layout.executable,
                        message="the interpreter is missing")], ""
    dists = distributions(root, layout)
    owner: dict[str, Dist] = {}
    for d in dists:
        for m in d.modules:
            owner.setdefault(m, d)
    modules = list(owner)
    results: dict[str, dict[str, object]] = {}
    out: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="isolate-verify-imports-") as tmp:
        remaining = modules
        while remaining:
            got, culprit, why = _run_imports(python, remaining, runner, Path(tmp))
            results.update(got)
            if culprit is None:
                break
            d = owner[culprit]
            out.append(Finding(severity=ERROR, check=IMPORTS, path=d.dist_info,
                               message=f"`import {culprit}` ({d.name}) killed the interpreter "
                                       f"({why})"))
            results[culprit] = {"module": culprit, "ok": False, "crashed": True}
            remaining = [m for m in remaining if m not in results]
    for module in modules:
        rec = results.get(module)
        if rec is None or rec.get("ok") or rec.get("crashed"):
            continue
        d = owner[module]
        error = str(rec.get("error"))
        missing = rec.get("missing")
        if isinstance(missing, str) and not rec.get("missing_found"):
            top = missing.partition(".")[0]
            required, named = _declared(root, d, layout.xy, version or layout.xy)
            if canonicalize_name(top) not in required:
                how = ("declares it only for an extra" if canonicalize_name(top) in named
                       else "does not declare it")
                out.append(Finding(
                    severity=NOTE, check=IMPORTS, path=d.dist_info,
                    message=f"`import {module}` ({d.name}) fails: {error}; {top} is not part "
                            f"of the bundle and {d.name} {how}: an optional dependency "
                            "outside the lock"))
                continue
        host = next((s for s in optional_host_libraries
                     if f"{s}: cannot open shared object file" in error), None)
        if host is not None:
            out.append(Finding(severity=NOTE, check=IMPORTS, path=d.dist_info,
                               message=f"`import {module}` ({d.name}) fails: {error}; {host} "
                                       "is an optional host library this machine lacks"))
            continue
        out.append(Finding(severity=ERROR, check=IMPORTS, path=d.dist_info,
                           message=f"`import {module}` ({d.name}) fails: {error}"))
    detail = f"{len(modules)} modules of {len(dists)} distributions"
    return out, detail
