"""Native bindings to host libraries, built like the runtime's own interpreter.

A binding such as libvirt-python (an sdist only) must call the *host's* library, so it
is compiled here against the headers and link stubs of an old release of that library
(``profiles/devpackages/NAME.toml``, see ``isolate.pybuild.devpackages``) and never
carries the library itself. It is compiled with the interpreter's own cross compiler
(zig, for the interpreter's glibc target) against the interpreter's own headers, so the
runtime's glibc floor holds and the binding's symbol versions stay those of the old
release.

The build runs ``pip wheel --no-build-isolation`` in a throw-away venv of the
source-built interpreter holding the sdist's build requirements; the wheel is cached
under ``<cache>/built/native-<key>``, where the key covers the sdist, the interpreter,
the compiler, the glibc target and every pinned .deb.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isolate.bundle.fetch import Artifact
from isolate.bundle.wheelhouse import BUILT, SDIST_EPOCH, prebuilt_wheel
from isolate.errors import CommandFailed, InputError
from isolate.locking.backends import IndexOptions
from isolate.proc import Runner, clean_env
from isolate.progress import NoProgress, Progress
from isolate.pybuild.devpackages import DevPackages, dev_root, pkgconfig_env
from isolate.pybuild.toolchain import ARCH_TRIPLES, find_zig, write_wrappers

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

RECIPE = "3"  # bump when the build recipe below changes what it makes


@dataclass(frozen=True, kw_only=True, slots=True)
class NativeTarget:
    """The source-built interpreter a binding is compiled for."""

    python: Path  # its executable (in the interpreter cache, never modified)
    key: str  # its build inputs' digest (build-info.json "key")
    glibc: str  # its glibc target, e.g. "2.17"
    arch: str  # "x86_64"
    compiler_version: str  # the ziglang version it was built with


def build_key(art: Artifact, target: NativeTarget, devs: Sequence[DevPackages]) -> str:
    h = hashlib.sha256()
    for part in (RECIPE, art.sha256, target.key, target.glibc, target.arch,
                 target.compiler_version, *sorted(d.sha256 for d in devs)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def build_requires(sdist: Path) -> list[str]:
    """``[build-system] requires`` of an sdist (setuptools when it has no pyproject.toml)."""
    try:
        with tarfile.open(sdist) as tf:
            member = next((m for m in tf.getmembers()
                           if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")),
                          None)
            f = tf.extractfile(member) if member is not None else None
            data = tomllib.loads(f.read().decode("utf-8")) if f is not None else {}
    except (tarfile.TarError, OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{sdist.name}: cannot read its pyproject.toml: {exc}",
                         hint="check that the sdist is a .tar.gz of a Python project") from exc
    requires = data.get("build-system", {}).get("requires", ["setuptools"])
    return [str(r) for r in requires] or ["setuptools"]


def native_wheel(art: Artifact, *, target: NativeTarget, devs: Sequence[DevPackages],
                 index: IndexOptions, runner: Runner, cache: Path,
                 progress: Progress | None = None, offline_hint: str | None = None) -> Path:
    """The wheel of ``art`` (an sdist) compiled against ``devs`` for ``target``."""
    key = build_key(art, target, devs)
    name = f"native-{key}"
    built_dir = cache / BUILT
    found = prebuilt_wheel([built_dir], name)
    if found is not None:
        return found
    if offline_hint is not None:
        raise InputError(
            f"{art.pin.key}: its binding is compiled against "
            f"{', '.join(d.name for d in devs)}, and no such build is in the cache; "
            "building one offline is not possible", hint=offline_hint)
    (progress or NoProgress()).note(
        f"compiling {art.path.name} against {', '.join(d.name for d in devs)} "
        f"for glibc {target.glibc}")
    roots = [dev_root(d, runner=runner, cache=cache) for d in devs]
    zig, zig_version = find_zig(target.compiler_version)
    built_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=built_dir, prefix=f".{name}.", suffix=".tmp"))
    try:
        # The interpreter's headers are named by assert()s in inline functions: map their
        # directory to the name it has in a runtime ("python"), as the interpreter did.
        tools = write_wrappers(zig, zig_version, f"{ARCH_TRIPLES[target.arch]}.{target.glibc}",
                               tmp / "tools", cache / "zig",
                               prefix_map=(target.python.parent.parent, "python"))
        venv = tmp / "venv"
        runner.run([target.python, "-m", "venv", "--without-pip", venv],
                   what="making a build venv of the runtime's interpreter")
        vpython = venv / "bin" / "python"
        pip: list[str | os.PathLike[str]] = [sys.executable, "-m", "pip", "--python", vpython]
        env = clean_env({**index.env(), "SOURCE_DATE_EPOCH": str(SDIST_EPOCH)})
        runner.run([*pip, "install", "-q", *index.pip_args(), *build_requires(art.path)],
                   env=env, timeout=900, what=f"installing the build requirements of "
                                              f"{art.pin.key}")
        includes = [f"-I{p}" for r in roots for p in r.include_dirs()]
        libs = [f"-L{p}" for r in roots for p in r.lib_dirs()]
        env = {**env, **tools.env(env.get("PATH", os.defpath)),
               # only the pinned packages' pkg-config files: none of this machine's
               **pkgconfig_env(roots),
               # zig cc may add UBSan checks, whose type descriptors name header paths of
               # this machine (the interpreter's, zig's own): a binding does without them
               "CFLAGS": " ".join(["-fno-sanitize=undefined", *includes]),
               "LDFLAGS": " ".join(libs)}
        out = tmp / "wheel"
        runner.run([*pip, "wheel", "--no-build-isolation", "--no-deps", "--no-cache-dir", "-q",
                    *index.pip_args(), "-w", out, art.path],
                   env=env, timeout=1800, what=f"compiling a wheel of {art.pin.key}")
        if not list(out.glob("*.whl")):
            raise InputError(f"{art.pin.key}: compiling {art.path.name} made no wheel",
                             hint="check the sdist's build backend")
        with contextlib.suppress(OSError):  # another build won the race: keep its wheel
            os.replace(out, built_dir / name)
    except CommandFailed as exc:
        raise InputError(
            f"{art.pin.key}: compiling {art.path.name} against "
            f"{', '.join(d.name for d in devs)} failed",
            details=exc.details,
            hint="the output above names what is missing; the pinned .deb files may lack a "
                 "header the binding needs (pin its -dev package too)") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted((built_dir / name).glob("*.whl"))[0]
