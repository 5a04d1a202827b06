"""Benchmark of the Nova runtime build, side by side with pip and uv (run by `nox -s bench`).

Prints one table: the cold build of the source interpreter (CPython 3.13 and its C
dependencies for glibc 2.17, with its self-test), cold and warm isolate builds, pip and uv
installs of the same lock into a venv (with byte code), sizes, `isolate verify` time and
`nova-manage --version` start time from the bundle and from a plain venv. Figures, not
assertions.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints" / "nova.txt"
INDEX = os.environ.get("ISOLATE_INDEX_URL", "https://pypi.org/simple")


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTHON"))}
    e.update({"PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "PYTHONWARNINGS": "ignore"})
    e.update(extra)
    return e


def timed(argv: list[str], **kw: object) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.monotonic() - start


def python313() -> str:
    found = sorted((Path.home() / ".pyenv" / "versions").glob("3.13.*/bin/python3.13"))
    if found:
        return str(found[-1])
    return shutil.which("python3.13") or sys.exit("bench needs a CPython 3.13")


def du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def start_time(exe: Path, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([str(exe), "--version"], check=True, capture_output=True, env=env())
        samples.append(time.monotonic() - start)
    return statistics.median(samples[1:])


def main() -> None:
    isolate = shutil.which("isolate") or sys.exit("isolate is not installed")
    py = python313()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="isolate-bench-") as tmp:
        t = Path(tmp)
        cache = t / "cache"
        build = [isolate, "--root", str(ROOT), "bundle", "nova", "--format", "dir", "-q",
                 "--no-tests-overlay"]
        done = subprocess.run([isolate, "--root", str(ROOT), "python", "build", "3.13", "--json"],
                              check=True, capture_output=True, text=True,
                              env=env(ISOLATE_CACHE_DIR=str(cache)))
        info = json.loads(done.stdout)
        secs = info["seconds"]
        rows.append(("source interpreter CPython 3.13 for glibc 2.17, cold (budget 15 min)",
                     f"{(secs['total'] + secs.get('selftest', 0)) / 60:.1f} min"))
        rows.append(("  of which", ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()
                                             if k != "total")))
        rows.append(("  its floor; its size", f"glibc {info['glibc_floor']}; "
                                               f"{info['size_bytes'] / 1e6:.0f} MB"))
        cold = timed([*build, "-o", str(t / "cold")], env=env(ISOLATE_CACHE_DIR=str(cache)))
        warm = timed([*build, "-o", str(t / "warm")], env=env(ISOLATE_CACHE_DIR=str(cache)))
        rows += [("isolate bundle, cold wheels (download, build, compile)", f"{cold:.1f} s"),
                 ("isolate bundle, warm cache", f"{warm:.1f} s")]
        arch = timed([*build, "-o", str(t / "arch"), "--format", "tar.zst"],
                     env=env(ISOLATE_CACHE_DIR=str(cache)))
        rows.append(("isolate bundle, warm cache, tar.zst archive", f"{arch:.1f} s"))
        (bundle,) = [p for p in (t / "warm").iterdir() if p.is_dir()]
        (archive,) = (t / "arch").glob("*.tar.zst")

        pip_cache = t / "pip-cache"
        pip_install = ["-m", "pip", "install", "-q", "--no-deps", "--require-hashes",
                       f"--index-url={INDEX}", f"--cache-dir={pip_cache}", "-r", str(LOCK)]
        subprocess.run([py, "-m", "venv", str(t / "pipwarmup")], check=True)
        timed([str(t / "pipwarmup/bin/python"), *pip_install], env=env())
        subprocess.run([py, "-m", "venv", str(t / "pipvenv")], check=True)
        pip = timed([str(t / "pipvenv/bin/python"), *pip_install], env=env())
        rows.append(("pip install of the same lock into a venv, warm cache (compiles)",
                     f"{pip:.1f} s"))
        uv = shutil.which("uv")
        if uv:
            uv_cache = t / "uv-cache"
            uv_install = [uv, "pip", "install", "-q", "--no-deps", "--require-hashes",
                          "--compile-bytecode", f"--index-url={INDEX}", "-r", str(LOCK)]
            e = env(UV_CACHE_DIR=str(uv_cache))
            subprocess.run([uv, "venv", "-q", "-p", py, str(t / "uvwarmup")], check=True, env=e)
            timed([*uv_install, "-p", str(t / "uvwarmup/bin/python")], env=e)
            subprocess.run([uv, "venv", "-q", "-p", py, str(t / "uvvenv")], check=True, env=e)
            uvt = timed([*uv_install, "-p", str(t / "uvvenv/bin/python")], env=e)
            rows.append(("uv pip install of the same lock into a venv, warm cache, "
                         "--compile-bytecode", f"{uvt:.1f} s"))
        else:
            rows.append(("uv", "not installed"))
        rows.append(("warm isolate build vs pip", f"{pip / warm:.1f}x faster"))
        rows += [("bundle size (directory)", f"{du(bundle) / 1e6:.0f} MB"),
                 ("pip venv size", f"{du(t / 'pipvenv') / 1e6:.0f} MB (without its Python)"),
                 ("archive size (tar.zst)", f"{archive.stat().st_size / 1e6:.0f} MB")]
        verify = min(timed([isolate, "verify", str(bundle)], env=env()) for _ in range(3))
        rows.append(("isolate verify of the bundle directory (best of 3)", f"{verify:.2f} s"))
        b = start_time(bundle / "bin" / "nova-manage")
        v = start_time(t / "pipvenv" / "bin" / "nova-manage")
        rows += [("nova-manage --version from the bundle (median)", f"{b * 1000:.0f} ms"),
                 ("nova-manage --version from the pip venv (median)", f"{v * 1000:.0f} ms"),
                 ("launcher overhead vs venv", f"{(b / v - 1) * 100:+.1f} %")]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'benchmark (2-core machine)':<{width}}  figure")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
