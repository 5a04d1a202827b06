"""The children check: what the runtime starts with ``sys.executable`` is isolated too.

``children_probe.py`` (copied out of isolate, run by the bundle's ``bin/python3``) starts
``sys.executable`` the ways an app does: ``subprocess`` with ``-c``, multiprocessing's
spawn and forkserver, and ``os.execv`` after a fork; each child writes what it sees. It
runs twice, from an empty working directory outside the bundle: in a clean environment
and in the hostile one of ``isolate.hostile_env``. A finding is reported when planted
code ran, when a child did not start, when a child ignores neither ``PYTHON*``
variables nor the user site on its own, and when anything a child sees differs between
the two runs.
"""

from __future__ import annotations

import importlib.resources
import json
import tempfile
from pathlib import Path
from typing import Any

from isolate import hostile_env
from isolate.proc import Runner
from isolate.verify.layout import Layout
from isolate.verify.report import CHILDREN, ERROR, Finding

TIMEOUT = 300.0
PROBE = "children_probe.py"


def _error(message: str, path: str | None = None) -> Finding:
    return Finding(severity=ERROR, check=CHILDREN, path=path, message=message)


def _run(launcher: Path, probe: Path, out: Path, env: dict[str, str], cwd: Path,
         runner: Runner) -> tuple[dict[str, Any] | None, str]:
    done = runner.run([launcher, "-B", probe, "--out", out], env=env, cwd=cwd,
                      timeout=TIMEOUT, check=False, what="the children probe")
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        why = "timed out" if done.timed_out else f"exit code {done.returncode}"
        return None, f"{why}: {done.tail(8) or 'no output'}"
    return (data if isinstance(data, dict) else None), ""


def _differences(clean: Any, hostile: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as ``key.key: clean -> hostile``."""
    if isinstance(clean, dict) and isinstance(hostile, dict):
        out: list[str] = []
        for k in sorted(set(clean) | set(hostile)):
            out += _differences(clean.get(k), hostile.get(k), f"{where}.{k}" if where else k)
        return out
    if clean != hostile:
        return [f"{where}: {clean!r} -> {hostile!r}"]
    return []


def children(root: Path, layout: Layout, runner: Runner) -> tuple[list[Finding], str]:
    """Start the probe in a clean and in a hostile environment; compare the children."""
    launcher = root / layout.launcher
    if not launcher.is_file():
        return [_error("missing: the runtime cannot be started", layout.launcher)], ""
    out: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="isolate-verify-children-") as tmp:
        base = Path(tmp)
        probe = base / PROBE
        probe.write_text(importlib.resources.files("isolate.verify").joinpath(PROBE)
                         .read_text(encoding="utf-8"), encoding="utf-8")
        views: dict[str, dict[str, Any]] = {}
        for run in ("clean", "hostile"):
            work = base / run
            (work / "cwd").mkdir(parents=True)
            env = {"PATH": "/usr/bin:/bin", "HOME": str(work / "home"), "TMPDIR": str(work),
                   "LC_ALL": "C.UTF-8"}
            hostile = None
            if run == "hostile":
                hostile = hostile_env.plant(work / "env", versions=[layout.xy])
                env.update(hostile.env)
            data, why = _run(launcher, probe, work / "children.json", env, work / "cwd",
                             runner)
            if hostile is not None:
                out += [_error(f"a child process is not isolated: "
                               f"{hostile_env.PLACES[place]}") for place in hostile.ran()]
            if data is None:
                out.append(_error(f"the children probe failed in the {run} environment "
                                  f"({why})", layout.launcher))
                return out, ""
            views[run] = data
    clean, hostile_view = views["clean"], views["hostile"]
    for how in sorted(set(clean) | set(hostile_view)):
        c, h = clean.get(how) or {}, hostile_view.get(how) or {}
        for run, v in (("clean", c), ("hostile", h)):
            if "error" in v:
                last = "\n".join(str(v["error"]).strip().splitlines()[-6:])
                out.append(_error(f"{how}: sys.executable did not start in the {run} "
                                  f"environment: {last}"))
        flags = c.get("flags") or {}
        if how != "self" and "error" not in c and not (
                flags.get("ignore_environment") and flags.get("no_user_site")):
            out.append(_error(f"{how}: sys.executable started without flags reads PYTHON* "
                              "variables or the user site (it is not isolated by itself)",
                              layout.executable))
        if "error" in c or "error" in h:
            continue
        diff = _differences(c, h)
        if diff:
            more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
            out.append(_error(f"{how}: the child sees the hostile environment: "
                              f"{'; '.join(diff[:4])}{more}"))
    detail = ", ".join(sorted(k for k in clean if k != "self"))
    return out, f"sys.executable started by {detail}"
