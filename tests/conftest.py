"""Shared fixtures: run the real CLI in-process, a workspace, and a wheelhouse of real wheels.

The wheelhouse is built here, from nothing, as pure-Python wheels with proper METADATA,
WHEEL and RECORD files, so that locking tests resolve offline with ``--no-index
--find-links``. Only the first lock of a session needs PyPI, to install pip-tools into
the tool environment under the test cache (``~/.cache/isolate-tests``), which is kept
between runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isolate import hostile_env
from isolate.cli import main
from isolate.hostfacts import this_machine
from isolate.interpreters import Discovery
from isolate.proc import Runner

REPO = Path(__file__).resolve().parent.parent
ON_CI = os.environ.get("CI") == "true"


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``ok``; on CI (CI=true) a missing prerequisite is a
    failure, never a silent pass."""
    if not ok:
        if ON_CI:
            pytest.fail(f"CI must provide this: {reason}")
        pytest.skip(reason)


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except OSError:
        return False


def debian_archive_reachable() -> bool:
    try:
        urllib.request.urlopen("https://deb.debian.org/debian/", timeout=10).close()
        return True
    except OSError:
        return False

# name -> version -> Requires-Dist lines
WHEELS: dict[str, dict[str, tuple[str, ...]]] = {
    "alpha": {"1.0": ("beta>=1",), "1.1": ("beta>=1",)},
    "beta": {"1.0": (), "2.0": ()},
    "gamma": {"1.0": ("delta",)},  # a test-only requirement with its own dependency
    "delta": {"1.0": ()},
    "conflicted": {"1.0": ("beta<1",)},  # its only version needs a beta that does not exist
    "marked": {
        "1.0": ('newpy; python_version >= "3.12"', 'oldpy; python_version < "3.12"'),
    },
    "newpy": {"1.0": ()},
    "oldpy": {"1.0": ()},
}
# Newer releases that only the second wheelhouse has.
NEWER_WHEELS: dict[str, dict[str, tuple[str, ...]]] = {
    "alpha": {"1.2": ("beta>=1",)},
    "beta": {"2.1": ()},
}
_EPOCH = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same wheel bytes on every run


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_wheel(directory: Path, name: str, version: str, requires: Sequence[str] = (),
                *, tag: str = "py3-none-any", extra: dict[str, str | bytes] | None = None) -> Path:
    """Write ``name-version-TAG.whl`` into ``directory``; return its path.

    ``extra`` adds files (e.g. ``{"NAME-V.dist-info/entry_points.txt": ...}``; bytes for
    binary files such as shared objects)."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            f"Summary: test wheel {name} {version}\n",
            *(f"Requires-Dist: {r}\n" for r in requires),
        ]
    )
    files: dict[str, str | bytes] = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: isolate-tests\nRoot-Is-Purelib: true\n"
            f"Tag: {tag}\n"
        ),
        **(extra or {}),
    }

    def raw(text: str | bytes) -> bytes:
        return text if isinstance(text, bytes) else text.encode()

    record = "".join(
        f"{path},{_record_hash(raw(text))},{len(raw(text))}\n" for path, text in files.items()
    )
    files[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    path = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, text in files.items():
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, text)
    return path


def _build_all(directory: Path, wheels: dict[str, dict[str, tuple[str, ...]]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, versions in wheels.items():
        for version, requires in versions.items():
            build_wheel(directory, name, version, requires)
    return directory


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links directory of small real wheels (see ``WHEELS``)."""
    return _build_all(tmp_path_factory.mktemp("wheelhouse"), WHEELS)


@pytest.fixture(scope="session")
def newer_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second find-links directory with alpha 1.2 and beta 2.1."""
    return _build_all(tmp_path_factory.mktemp("wheelhouse-newer"), NEWER_WHEELS)


@pytest.fixture(scope="session")
def test_cache_dir() -> Path:
    """A stable cache, so the pip-tools tool environment is built once, not per run."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "isolate-tests"


# Session fixtures run before function fixtures: point every test at the test cache now.
os.environ.setdefault("ISOLATE_CACHE_DIR", str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "isolate-tests"))


@pytest.fixture(autouse=True)
def _isolate_cache(monkeypatch: pytest.MonkeyPatch, test_cache_dir: Path) -> None:
    monkeypatch.setenv("ISOLATE_CACHE_DIR", str(test_cache_dir))


@pytest.fixture(scope="session")
def target_python() -> str:
    """A runtime Python version for test profiles that this machine has an interpreter of.

    A version other than the controller's is preferred, so that locking shows it resolves
    for the profile's version and not for the Python that runs isolate.
    """
    found = Discovery(Runner()).by_minor()
    for minor in ((3, 12), (3, 13), (3, 11), (3, 10), (3, 9)):
        if minor in found and minor != sys.version_info[:2]:
            return f"{minor[0]}.{minor[1]}"
    if sys.version_info[:2] in found:
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    pytest.skip("no CPython 3.9+ found by isolate's discovery (pyenv or PATH)")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty isolate workspace: profiles/runtimes, profiles/hosts and constraints."""
    ws = tmp_path / "ws"
    for sub in ("profiles/runtimes", "profiles/hosts", "constraints"):
        (ws / sub).mkdir(parents=True)
    return ws


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def invoke(args: Sequence[str | os.PathLike[str]], cwd: Path | None = None,
           runner: Runner | None = None) -> Result:
    """Run ``isolate ARGS`` in this process, as a user would see it (``runner``: the
    Runner every command of isolate goes through)."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([os.fspath(a) for a in args], runner=runner)
            except SystemExit as exc:  # argparse: --version, --help, usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(old_cwd)
    return Result(code=int(code), out=out.getvalue(), err=err.getvalue())


@pytest.fixture
def run_isolate() -> Callable[..., Result]:
    """``run_isolate("lock", "app", cwd=ws)`` -> Result(code, out, err)."""

    def run(*args: str | os.PathLike[str], cwd: Path | None = None) -> Result:
        return invoke(args, cwd=cwd)

    return run


# -- a small runtime bundle, built once per session ---------------------------------

# The small test runtimes bundle a copy of a local interpreter, whose glibc floor is at
# most this machine's glibc: their profiles target it, so that the floor contract holds
# (isolate's default target, glibc 2.17, needs an interpreter built for it).
MACHINE_GLIBC = this_machine().libc_version
TARGET = f'\n[target]\nglibc = "{MACHINE_GLIBC}"\n'

# The small app (tests/apps/tool): the wheel "tool" on the runtime "app".
TOOL_APP = REPO / "tests" / "apps" / "tool"


def app_profile(python: str, *, package: bool = False) -> str:
    """tests/apps/tool's runtime profile for ``python`` and this machine's glibc; with
    ``package``, with its [package] table too."""
    text = (TOOL_APP / "profiles" / "runtimes" / "app.toml").read_text()
    text = re.sub(r'(?m)^python = ".*"$', f'python = "{python}"', text, count=1)
    text = re.sub(r'(?m)^glibc = ".*"$', f'glibc = "{MACHINE_GLIBC}"', text, count=1)
    if package:
        text += "\n" + (TOOL_APP / "package.toml").read_text()
    return text


# A console script that starts sys.executable children: verify's own probe, shipped by
# the app (isolate/verify/children_probe.py runs inside bundles on CPython 3.8+).
CHILDREN_PROBE = REPO / "isolate" / "verify" / "children_probe.py"


def tool_wheel(directory: Path) -> Path:
    """The wheel tool-1.0 from tests/apps/tool, with verify's children probe as
    tool/children.py."""
    src = TOOL_APP / "src"
    files: dict[str, str | bytes] = {p.relative_to(src).as_posix(): p.read_text()
                                     for p in sorted(src.rglob("*.py"))}
    files["tool/children.py"] = CHILDREN_PROBE.read_text()
    files["tool-1.0.dist-info/entry_points.txt"] = (TOOL_APP / "entry_points.txt").read_text()
    return build_wheel(directory, "tool", "1.0", ["alpha"], extra=files)


@pytest.fixture(scope="session")
def app_wheels(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("app-wheels")
    for w in wheelhouse.iterdir():
        shutil.copy(w, d)
    tool_wheel(d)
    return d


def index(d: Path) -> list[str]:
    return ["--no-index", "--find-links", str(d)]


@pytest.fixture(scope="session")
def app_ws(tmp_path_factory: pytest.TempPathFactory, target_python: str, app_wheels: Path) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "app.toml").write_text(app_profile(target_python))
    r = invoke(["--root", ws, "lock", "app", *index(app_wheels)])
    assert r.code == 0, r.output
    return ws


@pytest.fixture(scope="session")
def built(app_ws: Path, app_wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    r = invoke(["--root", app_ws, "bundle", "app", "-o", out, "--format", "dir,tar.gz,tar.zst",
                "-q", *index(app_wheels)])
    assert r.code == 0, r.output
    return out


def bundle_dir(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if p.is_dir() and not p.name.endswith(".tests")
            and not p.name.startswith(".")]
    return d




# -- children of the runtime, in a clean and a hostile environment ---------------------


def children_views(argv: Sequence[str | os.PathLike[str]], work: Path, xy: str,
                   *, hostile: bool) -> dict[str, Any]:
    """Run ``argv --out FILE`` (the children probe, as a script or a console script) from an
    empty directory, in a clean environment or in isolate's hostile one; what it wrote."""
    work.mkdir(parents=True)
    (work / "cwd").mkdir()
    # forkserver's socket lives in TMPDIR: a pytest path can be too long for AF_UNIX
    tmpdir = tempfile.mkdtemp(prefix="iso-")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work / "home"), "LC_ALL": "C.UTF-8",
           "TMPDIR": tmpdir}
    planted = None
    if hostile:
        planted = hostile_env.plant(work / "env", versions=[xy])
        env.update(planted.env)
    out = work / "children.json"
    try:
        done = subprocess.run([*map(str, argv), "--out", str(out)], env=env, cwd=work / "cwd",
                              capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == done.stderr == "", done.stdout + done.stderr
    if planted is not None:
        assert planted.ran() == []
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def assert_children_isolated(argv: Sequence[str | os.PathLike[str]], tmp: Path,
                             xy: str) -> None:
    """``argv``'s children see the same with and without every hostile variable."""
    clean = children_views(argv, tmp / "clean", xy, hostile=False)
    hostile = children_views(argv, tmp / "hostile", xy, hostile=True)
    assert_same_views(clean, hostile)


def assert_same_views(clean: dict[str, Any], hostile: dict[str, Any]) -> None:
    """Every child started, ignores PYTHON* and the user site, and saw the same."""
    assert set(clean) == {"self", "subprocess", "spawn", "forkserver", "execv"}
    for how, view in [*clean.items(), *hostile.items()]:
        assert "error" not in view, (how, view)
        assert view["flags"]["ignore_environment"] == 1, how
        assert view["flags"]["no_user_site"] == 1, how
        assert view["breakpoint"] == "pdb", how
        assert all(not str(f).startswith("import failed") for f in view["modules"].values())
    assert hostile == clean


# -- the same runtime with a [package] table, built as dir, tar.zst, deb and rpm ----------

@pytest.fixture(scope="session")
def pkg_ws(tmp_path_factory: pytest.TempPathFactory, target_python: str,
           app_wheels: Path) -> Path:
    ws = tmp_path_factory.mktemp("pkg-ws")
    (ws / "profiles" / "runtimes").mkdir(parents=True)
    (ws / "profiles" / "runtimes" / "app.toml").write_text(
        app_profile(target_python, package=True))
    r = invoke(["--root", ws, "lock", "app", *index(app_wheels)])
    assert r.code == 0, r.output
    return ws


@pytest.fixture(scope="session")
def packaged(pkg_ws: Path, app_wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None or shutil.which("rpmbuild") is None:
        pytest.skip("dpkg-deb and rpmbuild are needed (apt-get install dpkg-dev rpm)")
    out = tmp_path_factory.mktemp("pkg-out")
    r = invoke(["--root", pkg_ws, "bundle", "app", "-o", out, "--format", "dir,tar.zst,deb,rpm",
                "-q", "--no-tests-overlay", *index(app_wheels)])
    assert r.code == 0, r.output
    return out
