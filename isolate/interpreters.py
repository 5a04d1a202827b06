"""Find the CPython interpreters installed on this machine (pyenv's and those on PATH)."""

from __future__ import annotations

import importlib.resources
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from isolate.cache import cache_root
from isolate.errors import EnvironmentProblem
from isolate.proc import Runner, clean_env

# Runs under each candidate, from Python 2.4 on: version, implementation, prefix
_PROBE = "interpreters_probe.py"
_NAMES = re.compile(r"^python(\d(\.\d+)?)?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Interpreter:
    path: Path  # the real path of the executable
    version: tuple[int, int, int]
    implementation: str
    prefix: Path
    origin: str  # "pyenv" or "PATH"

    @property
    def minor(self) -> tuple[int, int]:
        return self.version[:2]

    @property
    def minor_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def _candidates(env: Mapping[str, str]) -> Iterable[tuple[Path, str]]:
    root = Path(env.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = root / "versions"
    if versions.is_dir():
        for d in sorted(versions.iterdir()):
            for name in ("python3", "python", "python2"):
                exe = d / "bin" / name
                if exe.is_file():
                    yield exe, "pyenv"
                    break
    for entry in env.get("PATH", "").split(os.pathsep):
        if not entry or "shims" in Path(entry).parts:
            continue  # pyenv's shims are shell scripts that pick a version by context
        p = Path(entry)
        if not p.is_dir():
            continue
        try:
            names = sorted(os.listdir(p))
        except OSError:
            continue
        for name in names:
            if _NAMES.match(name):
                yield p / name, "PATH"


class Discovery:
    """Finds interpreters once per instance; make a new one to look again."""

    def __init__(self, runner: Runner, env: Mapping[str, str] | None = None):
        self._runner = runner
        self._env = dict(os.environ if env is None else env)
        self._found: list[Interpreter] | None = None

    def all(self) -> list[Interpreter]:
        if self._found is None:
            self._found = self._discover()
        return self._found

    def _discover(self) -> list[Interpreter]:
        seen: set[Path] = set()
        found: dict[Path, Interpreter] = {}
        probe = importlib.resources.files("isolate").joinpath(_PROBE).read_text(encoding="utf-8")
        for exe, origin in _candidates(self._env):
            try:
                real = exe.resolve()
            except OSError:
                continue
            if real in seen or not os.access(real, os.X_OK):
                continue
            seen.add(real)
            done = self._runner.run([real, "-B", "-c", probe], env=clean_env(), timeout=20,
                                    check=False)
            if not done.ok:
                continue
            try:
                version, impl, prefix = done.stdout.strip().split(" ", 2)
                major, minor, micro = (int(p) for p in version.split("."))
            except ValueError:
                continue
            found[real] = Interpreter(
                path=real,
                version=(major, minor, micro),
                implementation=impl,
                prefix=Path(prefix),
                origin=origin,
            )
        return sorted(
            (i for i in found.values() if i.implementation == "CPython"),
            key=lambda i: (i.version, i.origin == "pyenv"),
        )

    def _built(self, minor: tuple[int, int]) -> Interpreter | None:
        xy = f"{minor[0]}.{minor[1]}"
        base = cache_root() / "interpreters"
        best: Interpreter | None = None
        for info in sorted(base.glob(f"cpython-{xy}.*/build-info.json")):
            exe = info.parent / "python" / "bin" / f"python{xy}"
            try:
                version = tuple(int(p) for p in info.parent.name.split("-")[1].split("."))
            except ValueError:
                continue
            if len(version) != 3 or not os.access(exe, os.X_OK):
                continue
            cand = Interpreter(path=exe, version=(version[0], version[1], version[2]),
                               implementation="CPython", prefix=exe.parent.parent,
                               origin="isolate")
            if best is None or cand.version > best.version:
                best = cand
        return best

    def by_minor(self) -> dict[tuple[int, int], Interpreter]:
        """The newest interpreter of each major.minor version (pyenv's win a tie)."""
        out: dict[tuple[int, int], Interpreter] = {}
        for interp in self.all():  # sorted ascending, so later ones win
            out[interp.minor] = interp
        return out

    def find(self, minor: tuple[int, int], *, purpose: str) -> Interpreter:
        """The local interpreter of ``minor``; else one that isolate built from source
        (``isolate python build``) and keeps in its cache."""
        interp = self.by_minor().get(minor) or self._built(minor)
        if interp is not None:
            return interp
        have = ", ".join(i.minor_text for i in self.by_minor().values()) or "none"
        want = f"{minor[0]}.{minor[1]}"
        raise EnvironmentProblem(
            f"no CPython {want} found on this machine (needed {purpose}); found: {have}",
            hint=(
                f"install one (e.g. `pyenv install {want}`) or put a python{want} on PATH"
            ),
        )
