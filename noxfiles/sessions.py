"""Sessions: tests, e2e, lint, lock, bundle."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

from noxfiles.common import CLEAN_ENV, CONTROLLER_PYTHONS, install

__all__ = ["bench", "bundle", "e2e", "lint", "lock", "main", "matrix", "reliability", "report",
           "tests"]

MATRIX_HOSTS = [
    "local-2.7", "local-3.6", "local-3.9", "local-3.11", "local-3.13",
    "debian-11", "debian-12", "debian-13",
    # with libvirt0: the host side of a compute node; the profile's smoke check runs there
    "debian-11-libvirt", "debian-12-libvirt", "debian-13-libvirt",
    "ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04", "rhel-8", "rhel-9", "alpine-3.20",
    "xenserver-6.2-dom0",
]
OUT = "out"
RESULTS = "results"
REPORT = "report"


@nox.session(python=CONTROLLER_PYTHONS)
def tests(session: nox.Session) -> None:
    """The toolkit's own suite, without the slow end-to-end and the reliability tests."""
    install(session, "dev", "uv")
    session.run("pytest", "-m", "not slow and not reliability", "-n", "2", *session.posargs)


@nox.session(python="3.11")
def e2e(session: nox.Session) -> None:
    """End-to-end: the real Nova runtime, built, moved, run in Debian root filesystems."""
    install(session, "dev", "uv")
    # one test module per worker: a module's fixtures (the Nova bundle) are built once
    session.run("pytest", "-m", "slow", "-n", "2", "--dist", "loadfile", *session.posargs)


@nox.session(python="3.11")
def reliability(session: nox.Session) -> None:
    """Fault injection (SIGKILL, concurrent builds, a full disk) and the security of what
    isolate ships and runs; mounting a tmpfs and the rootfs sandbox need root."""
    install(session, "dev", "uv")
    session.run("pytest", "-m", "reliability", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    install(session, "dev")
    session.run("ruff", "check", "isolate", "noxfiles", "tests", "noxfile.py")
    session.run("mypy")


@nox.session(python="3.11")
def lock(session: nox.Session) -> None:
    """Relock the built-in runtimes; ``nox -s lock -- --check`` checks them."""
    install(session)
    for name in ("nova",):
        session.run("isolate", "lock", name, *session.posargs, env=CLEAN_ENV)


@nox.session(python="3.11")
def bundle(session: nox.Session) -> None:
    """Build the Nova runtime into ./out (``-- --format dir,tar.zst`` to change)."""
    install(session)
    session.run("isolate", "bundle", "nova", "-o", "out", *session.posargs, env=CLEAN_ENV)


def _bundle_archive(session: nox.Session) -> str:
    """The Nova bundle archive in out/, built when missing."""
    latest = Path(OUT) / "latest.txt"
    if not latest.exists():
        session.run("isolate", "bundle", "nova", "-o", OUT, "--format", "dir,tar.zst",
                    env=CLEAN_ENV)
    return str(Path(OUT) / f"{latest.read_text().strip()}.tar.zst")


@nox.session(python="3.11")
@nox.parametrize("host", MATRIX_HOSTS)
def matrix(session: nox.Session, host: str) -> None:
    """One matrix cell: Nova's tests in the bundle on HOST (``nox -l --json`` lists them)."""
    install(session)
    archive = _bundle_archive(session)
    Path(RESULTS).mkdir(exist_ok=True)
    session.run("isolate", "matrix", archive, "--hosts", host, "-o",
                f"{RESULTS}/{host}.json", *session.posargs, env=CLEAN_ENV, success_codes=[0, 1])


@nox.session(python="3.11")
def report(session: nox.Session) -> None:
    """Merge results/*.json and render report/ (HTML, Markdown, JUnit, JSON)."""
    install(session)
    files = sorted(str(p) for p in Path(RESULTS).glob("*.json"))
    if not files:
        session.error(f"no results in {RESULTS}/: run the matrix sessions first")
    Path(REPORT).mkdir(exist_ok=True)
    session.run("isolate", "report", *files, "--html", f"{REPORT}/index.html",
                "--markdown", f"{REPORT}/summary.md", "--junit", f"{REPORT}/junit.xml",
                "--json", f"{REPORT}/results.json", *session.posargs, env=CLEAN_ENV)


def _start_provisioning(session: nox.Session, log: Path) -> subprocess.Popen[bytes]:
    """`isolate provision` of the matrix's hosts in the background, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    bindir = session.bin
    env = {**os.environ, **{k: v for k, v in session.env.items() if v is not None}, **CLEAN_ENV,
           "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
    session.log(f"isolate provision --hosts ... in the background (output in {log})")
    with open(log, "wb") as out:
        hosts = [h for h in MATRIX_HOSTS if not h.startswith("local-")]
        return subprocess.Popen([str(Path(bindir) / "isolate"), "provision", "--hosts",
                                 ",".join(hosts)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, stdin=subprocess.DEVNULL)


def _finish_provisioning(session: nox.Session, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for the background provisioning and show what it said. A root filesystem it
    could not make is not the end of the job: that host's cells try again and say why."""
    code = proc.wait()
    session.log(f"isolate provision exited {code}:\n{log.read_text(errors='replace').rstrip()}")
    if code != 0:
        session.warn("a root filesystem could not be made ahead; its cells will try again")


@nox.session(python="3.11")
def main(session: nox.Session) -> None:
    """The main job: check the Nova lock, build the Nova runtime, run its tests on every
    host profile and render the compatibility report into report/.

    The root filesystems of the matrix's hosts are provisioned in the background from the
    start (debootstrap waits on the network), while the lock is checked, the bundle built
    and verified and the matrix runs: a rootfs cell whose root filesystem is still being
    made waits for it (the cache's file lock), the other cells do not. The matrix runs a
    cell per core, costliest first.
    """
    install(session)
    log = Path(OUT) / "provision.log"
    provisioning = _start_provisioning(session, log)
    try:
        session.run("isolate", "lock", "nova", "--check", env=CLEAN_ENV)
        session.run("isolate", "bundle", "nova", "-o", OUT, "--format", "dir,tar.zst",
                    env=CLEAN_ENV)
        archive = _bundle_archive(session)
        session.run("isolate", "verify", archive, env=CLEAN_ENV)
        Path(RESULTS).mkdir(exist_ok=True)
        session.run("isolate", "matrix", archive, "--hosts", ",".join(MATRIX_HOSTS), "-o",
                    f"{RESULTS}/all.json", env=CLEAN_ENV, success_codes=[0, 1])
    finally:
        # also when a step failed: what it makes only fills the cache, and nothing of the
        # job may outlive it
        _finish_provisioning(session, provisioning, log)
    Path(REPORT).mkdir(exist_ok=True)
    session.run("isolate", "report", f"{RESULTS}/all.json", "--html", f"{REPORT}/index.html",
                "--markdown", f"{REPORT}/summary.md", "--junit", f"{REPORT}/junit.xml",
                "--json", f"{REPORT}/results.json", env=CLEAN_ENV)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Figures: cold/warm Nova build vs pip and uv, sizes, verify and start-up time."""
    install(session, "uv")
    session.run("python", "noxfiles/benchmark.py", env=CLEAN_ENV)
