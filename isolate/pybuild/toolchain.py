"""The cross compiler: PyPI's ziglang, targeting a chosen glibc from any build machine.

``zig cc -target x86_64-linux-gnu.2.17`` compiles and links against the symbol set of
glibc 2.17, so what it builds needs nothing newer, whatever glibc this machine has. Its
own headers and libc stubs replace the build machine's, so no library of this machine
can leak into the result. The wrappers written here give autoconf, make and cmake one
program per tool (``cc``, ``c++``, ``ar``, ``ranlib``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from isolate.errors import EnvironmentProblem, InputError

ARCH_TRIPLES = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
# The oldest glibc whose symbol set zig's libc stubs offer for these architectures.
LOWEST_GLIBC = {"x86_64": (2, 17), "aarch64": (2, 17)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Toolchain:
    zig: Path
    version: str
    target: str  # e.g. x86_64-linux-gnu.2.17
    bin_dir: Path  # the wrappers: cc, c++, ar, ranlib

    @property
    def cc(self) -> Path:
        return self.bin_dir / "cc"

    @property
    def cxx(self) -> Path:
        return self.bin_dir / "c++"

    def env(self, path: str) -> dict[str, str]:
        """Variables that make configure, make and cmake use the cross compiler.

        The tools are named plainly (``cc``) and found first on ``PATH``: libraries that
        record how they were built (OpenSSL's version string, CPython's sysconfig) then
        name ``cc``, not a path of the build directory."""
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{path}",
            "CC": "cc", "CXX": "c++", "AR": "ar", "RANLIB": "ranlib",
        }


def parse_glibc(text: str, *, arch: str = "x86_64") -> tuple[int, int]:
    try:
        major, minor = (int(p) for p in text.split("."))
    except ValueError:
        raise InputError(f"glibc {text!r} is not a version like 2.17",
                         hint="give the glibc floor as MAJOR.MINOR, e.g. --glibc 2.17") from None
    lowest = LOWEST_GLIBC[arch]
    if (major, minor) < lowest:
        raise InputError(
            f"glibc {text} is below what the cross compiler supports for {arch} "
            f"({lowest[0]}.{lowest[1]})",
            hint=f"target glibc {lowest[0]}.{lowest[1]} or newer: a runtime built for it "
                 "runs on every newer glibc too")
    return major, minor


def find_zig(want_version: str) -> tuple[Path, str]:
    """The zig binary of the installed ``ziglang`` distribution, checked against the lock."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem(
            "the cross compiler is not installed (the Python distribution 'ziglang')",
            hint=f"pip install ziglang=={want_version} into isolate's environment "
                 "(isolate-runtime depends on it; reinstall isolate)")
    zig = Path(next(iter(spec.submodule_search_locations))) / "zig"
    if not zig.is_file() or not os.access(zig, os.X_OK):
        raise EnvironmentProblem(f"the ziglang distribution has no usable zig binary ({zig})",
                                 hint=f"reinstall it: pip install ziglang=={want_version}")
    version = importlib.metadata.version("ziglang")
    if version != want_version:
        raise EnvironmentProblem(
            f"ziglang {version} is installed, but the interpreter lock pins {want_version}",
            hint=f"pip install ziglang=={want_version}, or change the lock's "
                 "toolchain.compiler_version (which rebuilds the interpreter)")
    return zig, version


# zig cc refuses ``-Wp,-DNAME`` (setuptools passes Py_LIMITED_API that way): the compiler
# wrappers pass ``-DNAME``/``-UNAME`` instead, which means the same.
_WP = ('for a; do shift; case "$a" in -Wp,-D*|-Wp,-U*) set -- "$@" "${a#-Wp,}";; '
       '*) set -- "$@" "$a";; esac; done\n')


def write_wrappers(zig: Path, version: str, target: str, bin_dir: Path,
                   zig_cache: Path, *, prefix_map: tuple[Path, str] | None = None) -> Toolchain:
    """Shell wrappers around zig, one per tool, in ``bin_dir``.

    ``prefix_map`` (build directory, its name in the output) is given to every compile
    by the wrapper itself, so that it appears in no recorded CFLAGS."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    cache = f"ZIG_GLOBAL_CACHE_DIR='{zig_cache}' ZIG_LOCAL_CACHE_DIR='{zig_cache}'"
    pmap = f" '-ffile-prefix-map={prefix_map[0]}={prefix_map[1]}'" if prefix_map else ""
    tools = {
        "cc": f"cc -target {target}{pmap}",
        "c++": f"c++ -target {target}{pmap}",
        "ar": "ar",
        "ranlib": "ranlib",
    }
    for name, sub in tools.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{_WP if name in ('cc', 'c++') else ''}"
                        f"{cache} exec '{zig}' {sub} \"$@\"\n")
        path.chmod(0o755)
    return Toolchain(zig=zig, version=version, target=target, bin_dir=bin_dir)
