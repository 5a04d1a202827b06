"""Benchmark rows of `isolate lock nova --check` (issue 12, goal 5: at most 10 s with the
default install), side by side with `uv pip compile --generate-hashes` of the same inputs.

``rows(isolate, env)`` is called by noxfiles/benchmark.py; each row is (step, isolate
figure, peer figure, ratio vs goal). Whole-process medians of warm runs (the first run of
each side warms its caches and is not counted), the two sides alternating so that the
machine's load falls on both alike. Figures, not assertions.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the bench session runs 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "profiles" / "runtimes" / "nova.toml"
GOAL_SECONDS = 10.0
RUNS = 3


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env=env, cwd=cwd)
    return time.monotonic() - start


def _uv(isolate: str) -> str | None:
    beside = Path(isolate).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def _default_backend(isolate: str, env: dict[str, str]) -> str:
    """What the default backend says of itself, from `isolate lock --check`'s own line."""
    done = subprocess.run([isolate, "--root", str(ROOT), "lock", "nova", "--check"],
                          capture_output=True, text=True, env=env, check=False)
    words = done.stdout.split("match the profile: ", 1)
    return words[1].split(",", 1)[0] if len(words) == 2 else "?"


def _peer_inputs(work: Path) -> tuple[Path, list[str]]:
    """The Nova profile's requirements and test requirements as one requirements file,
    and the target options isolate gives uv: the same inputs `isolate lock` resolves."""
    profile = tomllib.loads(PROFILE.read_text())
    requirements = [*profile["requirements"], *profile.get("tests", {}).get("requirements", [])]
    src = work / "nova-with-tests.in"
    src.write_text("\n".join(requirements) + "\n")
    target = profile.get("target", {})
    python = profile["python"]
    platform = f"{target.get('arch', 'x86_64')}-manylinux_{target.get('glibc', '2.17').replace('.', '_')}"
    return src, [f"--python-version={python}", f"--python-platform={platform}"]


def rows(isolate: str, env: dict[str, str]) -> list[tuple[str, str, str, str]]:
    uv = _uv(isolate)
    if uv is None:
        return [("isolate lock nova --check", "-", "uv not installed", "-")]
    check = [isolate, "--root", str(ROOT), "lock", "nova", "--check"]
    with tempfile.TemporaryDirectory(prefix="isolate-bench-lock-") as tmp:
        work = Path(tmp)
        src, target = _peer_inputs(work)
        compile_ = [uv, "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
                    "--no-python-downloads", *target, "-o", str(work / "out.txt"), str(src)]
        ours: list[float] = []
        peer: list[float] = []
        for i in range(RUNS + 1):
            a = _timed(check, env, ROOT)
            b = _timed(compile_, env, work)
            if i:  # the first pair warms the caches
                ours.append(a)
                peer.append(b)
    backend = _default_backend(isolate, env)
    o, p = statistics.median(ours), statistics.median(peer)
    return [
        (f"isolate lock nova --check, default backend ({backend}), warm, median of {RUNS}",
         f"{o:.1f} s",
         f"uv pip compile --generate-hashes of the same inputs: {p:.1f} s",
         f"{o / GOAL_SECONDS:.2f}x the {GOAL_SECONDS:g} s goal "
         f"({'met' if o <= GOAL_SECONDS else 'missed'}); {o / p:.1f}x uv's one resolution"),
    ]


if __name__ == "__main__":
    import os

    for row in rows(shutil.which("isolate") or sys.exit("isolate is not installed"),
                    dict(os.environ)):
        print(" | ".join(row))
