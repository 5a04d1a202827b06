"""The hostile environment a runtime must not notice: one definition for every user.

The matrix's executors (local and rootfs cells) run the app's tests in it, and
``isolate verify`` starts the runtime and its children in it. ``plant`` writes the files
into a directory and returns the variables that point at them:

- ``PYTHONHOME``: a fake installation whose ``os.py`` writes a marker (a process that
  honours it dies at start-up for want of ``encodings``, or imports that ``os``);
- ``PYTHONPATH``: modules that shadow the standard library and the app's usual
  dependencies, a ``sitecustomize.py`` and the ``PYTHONBREAKPOINT`` hook;
- ``PYTHONUSERBASE`` (and ``HOME``): a user site with the same shadows, a
  ``usercustomize.py`` and a ``.pth`` file;
- ``PYTHONSTARTUP``: a file that writes a marker and exits;
- ``PYTHONSAFEPATH``, ``PYTHONNOUSERSITE``: flags that would change ``sys.path`` and
  ``sys.flags`` if honoured;
- ``PYTHONBREAKPOINT``: a hook in the shadow directory that writes a marker;
- a working directory holding shadows too (``Hostile.cwd``; see ``CWD_SHADOWED``).

Every planted module writes a marker file named after its place when it runs (and the
shadows then raise ``ImportError``): ``Hostile.ran()`` names the places that leaked.
Paths inside the files and the variables are those the process sees (``seen_as``), so a
root filesystem can bind the directory elsewhere; the markers directory must then be
bound writable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Modules every shadow directory holds: standard-library modules that no start-up
# imports (so that only the code that asks for them meets them), and modules that apps
# commonly import.
SHADOWED = ("base64", "colorsys", "quopri", "json", "six", "yaml")
# The working directory's shadows. A process started with ``-c`` or ``-m`` has the working
# directory on sys.path by CPython's rules, isolated or not (only -I/-P drop it), so the
# app's own ``-c`` children would meet these: none shadows a module of the standard library
# (``quopri`` did, and email imports it in pytest-xdist's ``-c`` workers). ``CWD_PROBE`` is
# a name nothing else has, which ``isolate verify``'s probe imports.
CWD_PROBE = "isolate_hostile_cwd"
CWD_SHADOWED = ("six", "yaml", CWD_PROBE)
BREAKPOINT_MODULE = "isolate_hostile_breakpoint"

# place -> what it proves when its marker exists
PLACES = {
    "pythonpath": "a module on PYTHONPATH shadowed the runtime's",
    "sitecustomize": "PYTHONPATH's sitecustomize.py ran",
    "user-site": "a module in the user site (PYTHONUSERBASE) shadowed the runtime's",
    "usercustomize": "the user site's usercustomize.py ran",
    "user-pth": "a .pth file in the user site ran",
    "cwd": "a module in the working directory shadowed the runtime's",
    "startup": "PYTHONSTARTUP ran",
    "pythonhome": "PYTHONHOME's os.py was imported",
    "breakpoint": "PYTHONBREAKPOINT's hook ran",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Hostile:
    env: dict[str, str]  # the variables to set (PYTHON*, HOME)
    cwd: Path  # a working directory with shadowing modules
    cwd_seen: str  # the same, as the process sees it
    markers: Path

    def ran(self) -> list[str]:
        """The places whose planted code ran (see ``PLACES``), sorted."""
        return sorted(p.name for p in self.markers.iterdir() if p.name in PLACES)


def _marker_code(markers_seen: str, place: str) -> str:
    path = f"{markers_seen}/{place}"
    return (f"try:\n    open({path!r}, 'w').close()\nexcept OSError:\n    pass\n")


def _shadow(markers_seen: str, place: str, module: str) -> str:
    return (_marker_code(markers_seen, place)
            + f"raise ImportError('isolate: the hostile {place} {module}.py was imported')\n")


def plant(directory: Path, *, versions: Iterable[str], seen_as: str | None = None
          ) -> Hostile:
    """Write the hostile files into ``directory`` (created; empty or absent).

    ``versions``: the ``X.Y`` of every Python whose user site and home get shadows (the
    runtime's, and a host's platform Python's). ``seen_as``: ``directory`` as the process
    sees it (default: the same path).
    """
    seen = (seen_as or str(directory)).rstrip("/")
    markers = directory / "markers"
    markers.mkdir(parents=True)
    m_seen = f"{seen}/markers"

    def write(rel: str, text: str) -> None:
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    for module in SHADOWED:
        write(f"pythonpath/{module}.py", _shadow(m_seen, "pythonpath", module))
    for module in CWD_SHADOWED:
        write(f"cwd/{module}.py", _shadow(m_seen, "cwd", module))
    write("pythonpath/sitecustomize.py", _marker_code(m_seen, "sitecustomize"))
    write(f"pythonpath/{BREAKPOINT_MODULE}.py",
          "def hook(*args, **kwargs):\n" + "".join(
              f"    {line}\n" for line in _marker_code(m_seen, "breakpoint").splitlines()))
    write("startup.py", _marker_code(m_seen, "startup")
          + "raise SystemExit('isolate: PYTHONSTARTUP must not run')\n")
    for xy in sorted(set(versions)):
        user_site = f"home/.local/lib/python{xy}/site-packages"
        for module in SHADOWED:
            write(f"{user_site}/{module}.py", _shadow(m_seen, "user-site", module))
        write(f"{user_site}/usercustomize.py", _marker_code(m_seen, "usercustomize"))
        write(f"{user_site}/isolate_hostile.pth",
              f"import os; open({m_seen + '/user-pth'!r}, 'w').close()\n")
        write(f"pythonhome/lib/python{xy}/os.py", _marker_code(m_seen, "pythonhome"))
    (directory / "pythonhome" / "bin").mkdir(parents=True, exist_ok=True)
    (directory / "home").mkdir(exist_ok=True)
    env = {
        "HOME": f"{seen}/home",
        "PYTHONHOME": f"{seen}/pythonhome",
        "PYTHONPATH": f"{seen}/pythonpath",
        "PYTHONSTARTUP": f"{seen}/startup.py",
        "PYTHONUSERBASE": f"{seen}/home/.local",
        "PYTHONSAFEPATH": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONBREAKPOINT": f"{BREAKPOINT_MODULE}.hook",
    }
    return Hostile(env=env, cwd=directory / "cwd", cwd_seen=f"{seen}/cwd", markers=markers)
