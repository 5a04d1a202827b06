"""Benchmark of the Nova runtime, side by side with its peers (run by ``nox -s bench``).

Prints one table: step, isolate's figure, the peer's (or the limit's) figure measured in
the same run on the same machine, and the ratio against the goal of issue 12. Figures,
not assertions; the machine and its load are printed with them.

- warm build: ``isolate bundle nova --format dir`` with every cache warm, against ``uv venv``
  + ``uv pip install --require-hashes --compile-bytecode`` of the same lock with a warm uv
  cache (median of ``--runs``, interleaved);
- archive: isolate's archive writer on the warm bundle against ``tar -c | zstd -T0`` at the
  same level, on the same tree;
- verify: ``noxfiles/bench_verify.py``; lock check: ``noxfiles/bench_lock.py``;
- cold build: an empty cache (wheels, store, byte code) against uv with an empty cache;
- start-up of ``nova-manage --version`` from the bundle and from the uv venv.

The interpreter (CPython 3.13 for glibc 2.17) and the wheels built from sdists (Nova's
libvirt-python, compiled against libvirt 7.0) are taken from isolate's cache for the cold
build, and the same built wheels are given to uv, so that both install the same things;
``--with-interpreter`` builds the interpreter from source in the temporary cache as well
(about 14 min) and reports it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isolate.cache import cache_root
from noxfiles import bench_lock, bench_verify

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints" / "nova.txt"
INDEX = os.environ.get("ISOLATE_INDEX_URL", "https://pypi.org/simple")
GOALS = {"warm": 0.5, "archive": 1.5, "cold": 2.0}
Row = tuple[str, str, str, str]


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
    return shutil.which("python3.13") or sys.exit("bench needs a CPython 3.13 for the peers")


def du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def start_time(exe: Path, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([str(exe), "--version"], check=True, capture_output=True, env=env())
        samples.append(time.monotonic() - start)
    return statistics.median(samples[1:])


def interleaved(a: Callable[[int], float], b: Callable[[int], float],
                runs: int) -> tuple[float, float]:
    """Medians of ``a`` and ``b``, run alternately so that load changes hit both."""
    xs, ys = [], []
    for i in range(runs):
        xs.append(a(i))
        ys.append(b(i))
    return statistics.median(xs), statistics.median(ys)


def machine() -> str:
    mem = ""
    try:
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{os.cpu_count()} cores{mem}, {platform.platform()}, "
            f"load average {os.getloadavg()[0]:.1f}")


def peer_requirements(t: Path, manifest: dict[str, object]) -> tuple[Path, Path]:
    """The lock for pip/uv, with the wheels isolate built from sdists in a find-links
    directory and pinned by their own hashes: the peers install what isolate installs."""
    links = t / "peer-links"
    links.mkdir()
    built: dict[str, str] = {}
    for d in manifest["distributions"]:  # type: ignore[attr-defined]
        if d.get("built_from_sdist"):
            found = sorted(cache_root().glob(f"built/*/{d['filename']}"))
            if not found:
                sys.exit(f"bench: the built wheel {d['filename']} is not in the cache")
            shutil.copy(found[0], links)
            built[d["name"].lower().replace("_", "-")] = d["sha256"]
    lines, skip = [], False
    for raw in LOCK.read_text().splitlines():
        line = raw.strip()
        if skip:
            skip = line.endswith("\\")
            continue
        name = line.split("==")[0].strip().lower().replace("_", "-") if "==" in line else ""
        if name in built:
            version = line.split("==")[1].split()[0]
            lines.append(f"{name}=={version} --hash=sha256:{built[name]}")
            skip = line.endswith("\\")
            continue
        lines.append(raw)
    req = t / "peer-requirements.txt"
    req.write_text("\n".join(lines) + "\n")
    return req, links


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per warm figure (median)")
    ap.add_argument("--with-interpreter", action="store_true",
                    help="also build the source interpreter cold (about 14 min)")
    args = ap.parse_args()
    isolate = shutil.which("isolate") or sys.exit("isolate is not installed")
    uv = shutil.which("uv") or sys.exit("bench needs uv (the [uv] extra)")
    py = python313()
    rows: list[Row] = []
    head = machine()
    with tempfile.TemporaryDirectory(prefix="isolate-bench-") as tmp:
        t = Path(tmp)
        cache = t / "cache"
        cache.mkdir()
        if args.with_interpreter:
            done = subprocess.run([isolate, "--root", str(ROOT), "python", "build", "3.13",
                                   "--json"], check=True, capture_output=True, text=True,
                                  env=env(ISOLATE_CACHE_DIR=str(cache)))
            info = json.loads(done.stdout)
            secs = info["seconds"]
            rows.append(("source interpreter CPython 3.13, cold (with its self-test)",
                         f"{(secs['total'] + secs.get('selftest', 0)) / 60:.1f} min",
                         "budget 15 min", ""))
        else:
            shutil.copytree(cache_root() / "interpreters", cache / "interpreters",
                            symlinks=True)
        if (cache_root() / "built").is_dir():
            shutil.copytree(cache_root() / "built", cache / "built", symlinks=True)
        if (cache_root() / "devpackages").is_dir():
            shutil.copytree(cache_root() / "devpackages", cache / "devpackages",
                            symlinks=True)
        e = env(ISOLATE_CACHE_DIR=str(cache))

        def build(out: Path, *extra: str) -> float:
            return timed([isolate, "--root", str(ROOT), "bundle", "nova", "-q", "-o", str(out),
                          "--no-tests-overlay", "--format", "dir", *extra], env=e)

        cold = build(t / "cold")
        (bundle,) = [p for p in (t / "cold").iterdir() if p.is_dir()]
        manifest = json.loads((bundle / "isolate-manifest.json").read_text())
        req, links = peer_requirements(t, manifest)
        uv_cache = t / "uv-cache"
        ue = env(UV_CACHE_DIR=str(uv_cache))
        uv_install = [uv, "pip", "install", "-q", "--no-deps", "--require-hashes",
                      "--compile-bytecode", f"--index-url={INDEX}", "--find-links",
                      str(links), "-r", str(req)]

        def uv_venv(name: str) -> float:
            start = time.monotonic()
            subprocess.run([uv, "venv", "-q", "-p", py, str(t / name)], check=True, env=ue)
            subprocess.run([*uv_install, "-p", str(t / name / "bin" / "python")], check=True,
                           env=ue)
            return time.monotonic() - start

        uv_cold = uv_venv("uv-cold")
        rows.append(("cold build: empty wheel/store/byte-code cache; uv: empty cache",
                     f"{cold:.1f} s", f"uv venv + install --compile-bytecode {uv_cold:.1f} s",
                     f"{cold / uv_cold:.2f} (goal {GOALS['cold']})"))

        warm, uv_warm = interleaved(lambda i: build(t / f"warm{i}"),
                                    lambda i: uv_venv(f"uv-warm{i}"), args.runs)
        rows.append((f"warm build: bundle nova --format dir (median of {args.runs})",
                     f"{warm:.1f} s", f"uv venv + install --compile-bytecode {uv_warm:.1f} s",
                     f"{warm / uv_warm:.2f} (goal {GOALS['warm']})"))

        write = ("import sys; from pathlib import Path; "
                 "from isolate.bundle.archive import write_archive; "
                 "write_archive(Path(sys.argv[1]), Path(sys.argv[2]), fmt='tar.zst', "
                 "root_name=Path(sys.argv[1]).name)")
        level = 3
        archive = t / f"{bundle.name}.tar.zst"
        peer_archive = t / "peer.tar.zst"
        tar = (f"tar -C {shlex.quote(str(bundle.parent))} --sort=name -c "
               f"{shlex.quote(bundle.name)} | zstd -{level} -T0 -q -c > "
               f"{shlex.quote(str(peer_archive))}")
        isolate_python = str(Path(isolate).with_name("python"))
        arch, peer = interleaved(
            lambda i: timed([isolate_python, "-c", write, str(bundle), str(archive)], env=e),
            lambda i: timed(["sh", "-c", tar], env=e), args.runs)
        rows.append((f"archive tar.zst of the bundle, level {level} (median of {args.runs})",
                     f"{arch:.1f} s, {archive.stat().st_size / 1e6:.0f} MB",
                     f"tar | zstd -T0 {peer:.1f} s, {peer_archive.stat().st_size / 1e6:.0f} MB",
                     f"{arch / peer:.2f} (goal {GOALS['archive']})"))

        rows += bench_verify.rows(isolate, bundle, archive, e)
        rows += bench_lock.rows(isolate, env())

        rows.append(("bundle size (directory); uv venv size (without its Python)",
                     f"{du(bundle) / 1e6:.0f} MB", f"{du(t / 'uv-cold') / 1e6:.0f} MB", ""))
        b = start_time(bundle / "bin" / "nova-manage")
        v = start_time(t / "uv-cold" / "bin" / "nova-manage")
        rows.append(("nova-manage --version (median of 6)", f"{b * 1000:.0f} ms",
                     f"uv venv {v * 1000:.0f} ms", f"{b / v:.2f} (keep 1.0)"))
    header = ("step", "isolate", "peer or limit", "ratio (goal)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(f"\nmachine: {head}; at the end: load average {os.getloadavg()[0]:.1f}")
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
