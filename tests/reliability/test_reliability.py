"""Reliability and security of ``isolate bundle`` and of the rootfs sandbox (issue 5).

Faults are injected into real ``isolate bundle`` processes building the small runtime of
``tests/conftest.py``: SIGKILL of the whole process group at spread-out moments and right
after every file-system step that publishes the output, two builds of one output at once,
and a full disk (a small tmpfs). After each fault the previous output must be intact
(``isolate verify`` passes, archive hashes unchanged), no partial output may appear, and
the next build must leave no temporary files. Then: what we ship has no world-writable,
setuid or setgid file and archive entries owned by 0/0; and a test command run in the
rootfs sandbox can write nowhere but its work directory and reach no network.

Each fault test prints a ``FIGURES`` line (``pytest -s`` shows it) and asserts its figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from isolate.proc import Runner
from isolate.provision.rootfs import MOUNT_BASE, Bind, RootfsSpec, bwrap_argv, ensure_rootfs, missing_tools

pytestmark = pytest.mark.reliability

ON_CI = os.environ.get("CI") == "true"
LOCK_NAME = ".isolate-build.lock"
BUILD_PREFIX = ".isolate-build-"
TIMEOUT = 600
KILL_TRIALS = 20
SHA_RE = re.compile(r"archive:\s+(\S+) \(.*sha256 ([0-9a-f]{64})\)")


def require(ok: bool, reason: str) -> None:
    if not ok:
        if ON_CI:
            pytest.fail(f"CI must provide this: {reason}")
        pytest.skip(reason)


# -- helpers ---------------------------------------------------------------------------


def bundle_argv(ws: Path, out: Path, wheels: Path, fmt: str = "dir,tar.zst") -> list[str]:
    return [sys.executable, "-m", "isolate", "--root", str(ws), "bundle", "app", "-o", str(out),
            "--format", fmt, "-q", "--no-index", "--find-links", str(wheels)]


def env() -> dict[str, str]:
    e = dict(os.environ)
    assert e.get("ISOLATE_CACHE_DIR"), "tests/conftest.py sets the test cache"
    return e


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=TIMEOUT,
                          check=False, **kw)  # type: ignore[call-overload]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def digest_tree(root: Path) -> str:
    """One hash of a tree: names, kinds, modes, contents and link targets."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                h.update(f"L {rel} {os.readlink(p)}\n".encode())
            elif stat.S_ISDIR(st.st_mode):
                h.update(f"D {rel} {stat.S_IMODE(st.st_mode):o}\n".encode())
            else:
                h.update(f"F {rel} {stat.S_IMODE(st.st_mode):o} {sha256_file(p)}\n".encode())
    return h.hexdigest()


def outputs(out: Path) -> dict[str, str]:
    """The visible outputs in ``out``: name -> digest of the directory tree or the file."""
    found = {}
    for p in sorted(out.iterdir()):
        if p.name.startswith("."):
            continue
        found[p.name] = digest_tree(p) if p.is_dir() and not p.is_symlink() else sha256_file(p)
    return found


def leftovers(out: Path) -> list[str]:
    """Temporary files and directories of builds: ``.isolate-build-*`` and ``*.tmp``."""
    found = {p.name for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME}
    found |= {p.relative_to(out).as_posix() for p in out.rglob("*.tmp")}
    return sorted(found)


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "isolate", "verify", str(path)])


def compare(expected: dict[str, str], now: dict[str, str]) -> tuple[list[str], list[str],
                                                                    list[str]]:
    """(lost, half-written or changed, unexpected) output names."""
    lost = sorted(expected.keys() - now.keys())
    changed = sorted(n for n in expected.keys() & now.keys() if expected[n] != now[n])
    extra = sorted(now.keys() - expected.keys())
    return lost, changed, extra


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


@dataclass(frozen=True)
class Good:
    """One good build: the output directory and what it holds."""

    ws: Path
    wheels: Path
    out: Path
    name: str
    outputs: dict[str, str]
    archive_sha: str
    seconds: float  # a warm rebuild, wall time

    @property
    def bundle(self) -> Path:
        return self.out / self.name

    @property
    def archive(self) -> Path:
        return self.out / f"{self.name}.tar.zst"

    def clone(self, dest: Path) -> Path:
        shutil.copytree(self.out, dest, symlinks=True)
        return dest


def check_output(good: Good, out: Path) -> list[str]:
    """What is wrong with ``out`` compared to the good output (empty: nothing)."""
    problems = []
    lost, changed, extra = compare(good.outputs, outputs(out))
    problems += [f"lost {n}" for n in lost]
    problems += [f"half-written or changed {n}" for n in changed]
    problems += [f"partial or unexpected {n}" for n in extra]
    if good.bundle.name not in lost:
        r = verify(out / good.name)
        if r.returncode != 0:
            problems.append(f"isolate verify {good.name}: exit {r.returncode}: {r.stdout[-2000:]}"
                            f"{r.stderr[-2000:]}")
    archive = out / f"{good.name}.tar.zst"
    if archive.exists() and sha256_file(archive) != good.archive_sha:
        problems.append("archive sha256 changed")
    return problems


@pytest.fixture(scope="module")
def good(app_ws: Path, app_wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Good:
    out = tmp_path_factory.mktemp("good")
    argv = bundle_argv(app_ws, out, app_wheels)
    r = run(argv)  # warms the caches
    assert r.returncode == 0, r.stdout + r.stderr
    first = outputs(out)
    start = time.monotonic()
    r = run(argv)  # a warm rebuild over the previous output: what the fault tests interrupt
    seconds = time.monotonic() - start
    assert r.returncode == 0, r.stdout + r.stderr
    assert outputs(out) == first, "a rebuild of the same lock must give the same output"
    assert leftovers(out) == []
    name = (out / "latest.txt").read_text().strip()
    archive = out / f"{name}.tar.zst"
    digest = sha256_file(archive)
    assert (out / f"{name}.tar.zst.sha256").read_text().split()[0] == digest
    assert verify(out / name).returncode == 0
    return Good(ws=app_ws, wheels=app_wheels, out=out, name=name, outputs=first,
                archive_sha=digest, seconds=seconds)


# -- 1. SIGKILL ------------------------------------------------------------------------


def is_checksum(problem: str) -> bool:
    """Whether a problem is about an archive's ``.sha256`` file (see the checksum test)."""
    return problem.rstrip().endswith((".tar.zst.sha256", ".tar.gz.sha256"))


def test_sigkill_at_spread_out_moments_loses_nothing(good: Good, tmp_path: Path) -> None:
    out = good.clone(tmp_path / "out")
    argv = bundle_argv(good.ws, out, good.wheels)
    # KILL_TRIALS moments spread over a build; builds that ran faster than the measured
    # one get a second, earlier pass, until KILL_TRIALS kills have landed mid-build.
    moments = [(k + 0.5) / KILL_TRIALS for k in range(KILL_TRIALS)]
    moments += [m * 0.6 for m in moments]
    trials = mid_build = with_leftovers = 0
    lost = half = partial = 0
    problems: list[str] = []
    checksums: list[str] = []
    for frac in moments:
        if trials >= KILL_TRIALS and mid_build >= KILL_TRIALS:
            break
        delay = frac * good.seconds
        proc = subprocess.Popen(argv, env=env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        mid_build += proc.poll() is None
        kill_group(proc)
        trials += 1
        with_leftovers += bool(leftovers(out))
        trial = check_output(good, out)
        lost += sum(p.startswith("lost ") for p in trial)
        half += sum(p.startswith("half-written") for p in trial)
        partial += sum(p.startswith("partial") for p in trial)
        problems += [f"kill {trials} at {delay:.2f}s: {p}" for p in trial if not is_checksum(p)]
        checksums += [f"kill {trials} at {delay:.2f}s: {p}" for p in trial if is_checksum(p)]
    r = run(argv)
    assert r.returncode == 0, r.stdout + r.stderr
    left = leftovers(out)
    problems += [f"after the next build: {p}" for p in check_output(good, out)]
    print(f"\nFIGURES sigkill: trials {trials}, build {good.seconds:.1f}s, kills mid-build "
          f"{mid_build}, trials leaving temporary files {with_leftovers}, files lost {lost} "
          f"(archive checksum files {len(checksums)}), half-written {half}, partial outputs "
          f"{partial}, leftovers after the next build {len(left)}")
    assert not problems, "\n".join(problems)
    assert left == [], left
    assert mid_build >= KILL_TRIALS, "the kills must land during builds"


# A wrapper around `isolate` that logs every file-system step on an entry of the output
# directory or of the build's work directory, from the creation of the work directory on,
# and in kill mode SIGKILLs its own process group right after step N.
STEP_HOOK = r"""
import os, signal, sys
out, n, log = os.path.realpath(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
del sys.argv[1:4]
work = os.path.join(out, ".isolate-build-%d" % os.getpid())
count = None

def wrap(name):
    real = getattr(os, name)

    def hooked(*args, **kwargs):
        global count
        result = real(*args, **kwargs)
        paths = [os.fspath(a) for a in args[:2] if isinstance(a, (str, os.PathLike))]
        if name == "mkdir" and paths and paths[0] == work:
            count = 0
        if count is not None and kwargs.get("dir_fd") is None and any(
                os.path.dirname(os.path.abspath(p)) in (out, work) for p in paths):
            count += 1
            with open(log, "a") as f:
                f.write(f"{count} {name} {' -> '.join(os.path.basename(p) for p in paths)}\n")
            if count == n:
                os.killpg(os.getpgrp(), signal.SIGKILL)
        return result

    setattr(os, name, hooked)

for name in ("replace", "rename", "unlink", "remove", "rmdir", "mkdir"):
    wrap(name)
from isolate.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class StepKills:
    steps: list[str]
    problems: list[str]  # "killed after step ...: problem"
    leftovers: list[str]  # after the next build
    final: list[str]  # problems of the output after the next build


@pytest.fixture(scope="module")
def step_kills(good: Good, tmp_path_factory: pytest.TempPathFactory) -> StepKills:
    """A build killed right after each of its file-system steps, one step per run."""
    base = tmp_path_factory.mktemp("steps")
    out = good.clone(base / "out")
    log = base / "steps.log"
    isolate_args = bundle_argv(good.ws, out, good.wheels)[3:]

    def hooked(n: int) -> list[str]:
        return [sys.executable, "-c", STEP_HOOK, str(out), str(n), str(log), *isolate_args]

    r = run(hooked(0))  # count the steps
    assert r.returncode == 0, r.stdout + r.stderr
    steps = log.read_text().splitlines()
    assert any(".tar.zst" in s for s in steps), steps
    problems: list[str] = []
    for n in range(1, len(steps) + 1):
        log.unlink()
        proc = subprocess.Popen(hooked(n), env=env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL, f"step {n} was not reached"
        step = log.read_text().splitlines()[-1]
        trial = check_output(good, out)
        problems += [f"killed after step {step}: {p}" for p in trial]
        if trial:  # start the next trial from the good output again
            shutil.rmtree(out)
            good.clone(out)
    r = run(hooked(-1))
    assert r.returncode == 0, r.stdout + r.stderr
    kills = StepKills(steps=steps, problems=problems, leftovers=leftovers(out),
                      final=check_output(good, out))
    lost = sum(": lost " in p for p in problems)
    print(f"\nFIGURES publishing steps: {len(steps)} steps, {len(steps)} kills, files lost "
          f"{lost} (archive checksum files {sum(map(is_checksum, problems))}), half-written "
          f"{sum(': half-written' in p for p in problems)}, partial outputs "
          f"{sum(': partial' in p for p in problems)}, leftovers after the next build "
          f"{len(kills.leftovers)}")
    return kills


def test_sigkill_right_after_each_build_step_keeps_the_output(step_kills: StepKills) -> None:
    problems = [p for p in step_kills.problems if not is_checksum(p)]
    assert not problems, "\n".join(["steps:", *step_kills.steps, "problems:", *problems])
    assert step_kills.leftovers == []
    assert step_kills.final == []


def test_sigkill_right_after_each_build_step_keeps_the_archive_checksums(
        step_kills: StepKills) -> None:
    """A rebuild that writes the same archive must never leave it without its ``.sha256``."""
    problems = [p for p in step_kills.problems if is_checksum(p)]
    assert not problems, "\n".join(["steps:", *step_kills.steps, "problems:", *problems])


# -- 2. Two builds at once -------------------------------------------------------------


def test_two_builds_of_one_output_at_once(good: Good, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    rounds = 0
    observed: set[str] = set()  # sha256 of every archive seen at the output path
    dir_gone = 0  # samples where a published directory was missing
    for _round in ("empty output directory", "over the previous output"):
        stop = threading.Event()
        had_dir = (out / good.name).is_dir()

        def watch(had_dir: bool = had_dir, stop: threading.Event = stop) -> None:
            nonlocal dir_gone
            while not stop.is_set():
                with contextlib.suppress(FileNotFoundError):
                    observed.add(sha256_file(out / f"{good.name}.tar.zst"))
                if had_dir and not (out / good.name / "bin" / "python3").exists():
                    dir_gone += 1
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        argv = bundle_argv(good.ws, out, good.wheels)
        started = time.monotonic()
        procs = [subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        ended: dict[int, float] = {}
        texts: dict[int, tuple[str, str]] = {}

        def reap(proc: subprocess.Popen[str], since: float = started,
                 ended: dict[int, float] = ended, texts: dict[int, tuple[str, str]] = texts
                 ) -> None:
            texts[proc.pid] = proc.communicate(timeout=TIMEOUT)
            ended[proc.pid] = time.monotonic() - since

        reapers = [threading.Thread(target=reap, args=(p,)) for p in procs]
        for t in reapers:
            t.start()
        for t in reapers:
            t.join()
        results = [(texts[p.pid], p.returncode, ended[p.pid]) for p in procs]
        stop.set()
        watcher.join()
        for (stdout, stderr), code, _secs in results:
            assert code == 0, stdout + stderr
            shas = {sha for path, sha in SHA_RE.findall(stdout) if path.endswith(
                f"{good.name}.tar.zst")}
            assert shas == {good.archive_sha}, stdout
        assert check_output(good, out) == []
        assert leftovers(out) == []
        first, second = sorted(ended.values())
        assert second - first >= 0.3 * good.seconds, "the second build must wait for the lock"
        rounds += 1
        print(f"\n  two builds, {_round}: finished after "
              + " and ".join(f"{s:.1f}s" for s in sorted(ended.values()))
              + f" (one build alone: {good.seconds:.1f}s)")
    print(f"FIGURES concurrency: {rounds} rounds of 2 builds, all succeeded, archive hashes "
          f"seen at the output path {len(observed)}, samples without the published directory "
          f"{dir_gone}, corrupted outputs 0")
    assert observed == {good.archive_sha}
    assert dir_gone == 0


# -- 3. A full disk --------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    mounted: list[Path] = []

    def mount(name: str, size_bytes: int) -> Path:
        require(os.geteuid() == 0, "mounting a tmpfs needs root")
        mnt = tmp_path / name
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes // 1024}k,mode=0755",
                            "tmpfs", str(mnt)], capture_output=True, text=True, check=False)
        require(r.returncode == 0, f"cannot mount a tmpfs: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        for mnt in reversed(mounted):
            subprocess.run(["umount", str(mnt)], check=False)


def allocated(path: Path) -> int:
    """Bytes a tree takes on a file system (blocks, not sizes)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*")) + 4096


def test_full_disk_ends_in_a_clear_error_and_no_partial_output(
        good: Good, tmpfs: Callable[[str, int], Path]) -> None:
    mb = 1 << 20
    bundle = allocated(good.bundle) + allocated(good.out / f"{good.name}.tests")
    archive = allocated(good.archive)
    previous = sum(allocated(p) for p in good.out.iterdir())
    # (name, tmpfs size, start from the previous output?): the disk fills at different stages
    cases = [
        ("empty-20m", 20 * mb, False),  # copying the interpreter
        ("empty-no-room-for-archive", bundle + archive // 2, False),  # writing the archive
        ("previous-no-room-for-tree", previous + bundle // 2, True),  # the new tree
        ("previous-no-room-for-archive", previous + bundle + archive // 2, True),
    ]
    figures = []
    problems: list[str] = []
    for name, size, with_previous in cases:
        mnt = tmpfs(name, size)
        out = mnt / "out"
        if with_previous:
            good.clone(out)
        r = run(bundle_argv(good.ws, out, good.wheels))
        text = r.stdout + r.stderr
        figures.append(f"{name} ({size / mb:.0f} MB): exit {r.returncode}")
        if r.returncode not in (2, 3):
            problems.append(f"{name}: exit {r.returncode}, not 2 or 3: {text[-3000:]}")
        if "Traceback" in text:
            problems.append(f"{name}: a traceback, not an isolate error: {text[-3000:]}")
        if "no space left" not in text.lower():
            problems.append(f"{name}: the error does not say 'No space left': {text[-1500:]}")
        if str(out) not in r.stderr:
            problems.append(f"{name}: the error does not name {out}: {r.stderr[-1500:]}")
        if with_previous:
            problems += [f"{name}: {p}" for p in check_output(good, out)]
        elif out.exists():
            problems += [f"{name}: partial output {n}" for n in outputs(out)]
        if out.exists() and leftovers(out):
            problems.append(f"{name}: temporary files left: {leftovers(out)}")
    print(f"\nFIGURES full disk: faults injected {len(cases)}: " + "; ".join(figures))
    assert not problems, "\n".join(problems)


# -- 4. What we ship -------------------------------------------------------------------


def unsafe_mode(mode: int) -> list[str]:
    bad = []
    if mode & stat.S_ISUID:
        bad.append("setuid")
    if mode & stat.S_ISGID:
        bad.append("setgid")
    if mode & stat.S_IWOTH:
        bad.append("world-writable")
    return bad


def check_tree_modes(root: Path) -> tuple[int, list[str]]:
    checked, bad = 0, []
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        checked += 1
        if unsafe_mode(st.st_mode):
            bad.append(f"{p}: {oct(stat.S_IMODE(st.st_mode))} {unsafe_mode(st.st_mode)}")
    return checked, bad


def check_archive_entries(archive: Path) -> tuple[int, list[str]]:
    checked, bad = 0, []
    with open(archive, "rb") as raw, \
            zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tf:
        for m in tf:
            checked += 1
            if (m.uid, m.gid, m.uname, m.gname) != (0, 0, "", ""):
                bad.append(f"{m.name}: owner {m.uid}/{m.gid} {m.uname!r}/{m.gname!r}")
            if not (m.isreg() or m.isdir() or m.issym()):
                bad.append(f"{m.name}: type {m.type!r}")
            if not m.issym() and unsafe_mode(m.mode):
                bad.append(f"{m.name}: {oct(m.mode)} {unsafe_mode(m.mode)}")
    return checked, bad


def test_shipped_files_are_not_writable_setuid_or_setgid(good: Good, tmp_path: Path) -> None:
    # Also built under umask 0, as a careless build farm would: modes must not follow it.
    loose = tmp_path / "umask0"
    r = run(bundle_argv(good.ws, loose, good.wheels), umask=0)
    assert r.returncode == 0, r.stdout + r.stderr
    files = entries = 0
    bad: list[str] = []
    for out in (good.out, loose):
        for tree in (out / good.name, out / f"{good.name}.tests"):
            n, problems = check_tree_modes(tree)
            files, bad = files + n, bad + problems
        for archive in (out / f"{good.name}.tar.zst", out / f"{good.name}.tests.tar.zst"):
            n, problems = check_archive_entries(archive)
            entries, bad = entries + n, bad + problems
    print(f"\nFIGURES shipped modes: {files} files and directories, {entries} archive entries "
          f"checked, {len(bad)} unsafe")
    assert not bad, "\n".join(bad[:50])
    assert sha256_file(loose / f"{good.name}.tar.zst") == good.archive_sha


# -- 5. The rootfs sandbox -------------------------------------------------------------

PROBE = r"""
import json, os, socket, sys
bundle, work, host_tmp_name = sys.argv[1], sys.argv[2], sys.argv[3]
writes = {}

def attempt(what, fn):
    try:
        fn()
        writes[what] = "ok"
    except OSError as exc:
        writes[what] = os.strerror(exc.errno) if exc.errno else str(exc)

def create(path):
    return lambda: open(path, "x").close()

for d in ("/", "/etc", "/usr", "/usr/lib", "/usr/bin", "/root", "/var", "/var/lib", "/opt",
          "/home", "/srv", "/bin"):
    attempt(f"create in {d}", create(os.path.join(d, "isolate-probe")))
attempt("append to /etc/passwd", lambda: open("/etc/passwd", "a").close())
attempt("remove /etc/hostname", lambda: os.unlink("/etc/hostname"))
attempt("mkdir /usr/lib/isolate-probe", lambda: os.mkdir("/usr/lib/isolate-probe"))
attempt("symlink in /etc", lambda: os.symlink("/tmp", "/etc/isolate-probe-link"))
attempt("chmod /bin/sh", lambda: os.chmod("/bin/sh", 0o777))
attempt("create in the bundle", create(os.path.join(bundle, "isolate-probe")))
attempt("create in the bundle's bin", create(os.path.join(bundle, "bin", "isolate-probe")))
attempt("append to the bundle's launcher", lambda: open(os.path.join(bundle, "bin", "python3"),
                                                        "a").close())
attempt("chmod the bundle's launcher", lambda: os.chmod(os.path.join(bundle, "bin", "python3"),
                                                        0o777))
attempt("remove the bundle's manifest",
        lambda: os.unlink(os.path.join(bundle, "isolate-manifest.json")))
attempt("create in the work directory", lambda: open(os.path.join(work, "written"), "w").write("x"))
attempt("create in /tmp", create(os.path.join("/tmp", host_tmp_name)))


def remount_rw_and_write():
    # A test command running as root could remount the read-only root and write through.
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    ms_remount, ms_bind = 32, 4096
    if libc.mount(b"none", b"/", None, ms_remount | ms_bind, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    open("/etc/isolate-probe-remounted", "x").close()


attempt("remount / read-write and create in /etc", remount_rw_and_write)

net = {}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=5).close()
    net["tcp 1.1.1.1:53"] = "connected"
except OSError as exc:
    net["tcp 1.1.1.1:53"] = f"failed: {exc}"
try:
    socket.getaddrinfo("pypi.org", 443)
    net["resolve pypi.org"] = "resolved"
except OSError as exc:
    net["resolve pypi.org"] = f"failed: {exc}"
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("8.8.8.8", 53))
    net["udp 8.8.8.8:53"] = "sent"
except OSError as exc:
    net["udp 8.8.8.8:53"] = f"failed: {exc}"
interfaces = [name for _i, name in socket.if_nameindex()]
caps = [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")]
with open(os.path.join(work, "probe.json"), "w") as f:
    json.dump({"writes": writes, "net": net, "interfaces": interfaces, "cap_eff": caps[0]}, f)
"""


def listing(root: Path) -> str:
    """A hash over every entry of a tree: names, kinds, modes, sizes, mtimes, link targets."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            target = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            h.update(f"{p.relative_to(root)} {st.st_mode:o} {st.st_size} {st.st_mtime_ns} "
                     f"{target}\n".encode())
    return h.hexdigest()


def test_rootfs_sandbox_allows_writes_only_to_the_work_directory_and_no_network(
        good: Good, tmp_path: Path) -> None:
    require(not missing_tools(), "; ".join(missing_tools()))
    rootfs = ensure_rootfs(RootfsSpec(suite="bookworm"), runner=Runner())
    watched = [rootfs / d for d in ("etc", "usr/bin", "usr/lib", "root", "var/lib", "opt", "tmp")]
    rootfs_before = listing(rootfs)
    watched_before = [digest_tree(d) for d in watched]
    bundle_before = digest_tree(good.bundle)
    work = tmp_path / "work"
    work.mkdir()
    (work / "probe.py").write_text(PROBE)
    bundle_at = f"{MOUNT_BASE}/bundle/{good.name}"
    tmp_name = f"isolate-probe-{uuid.uuid4().hex}"
    argv = bwrap_argv(rootfs, [f"{bundle_at}/bin/python3", f"{MOUNT_BASE}/work/probe.py",
                               bundle_at, f"{MOUNT_BASE}/work", tmp_name],
                      binds=[Bind(source=good.bundle, dest=bundle_at),
                             Bind(source=work, dest=f"{MOUNT_BASE}/work", writable=True)],
                      cwd=f"{MOUNT_BASE}/work")
    r = subprocess.run(argv, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                       timeout=300, check=False)
    rootfs_after = listing(rootfs)
    watched_after = [digest_tree(d) for d in watched]
    bundle_after = digest_tree(good.bundle)
    planted = [p for p in (*rootfs.rglob("isolate-probe*"), *good.bundle.rglob("isolate-probe*"))]
    for p in planted:  # repair the cached root filesystem for the tests that follow
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((work / "probe.json").read_text())
    writes: dict[str, str] = result["writes"]
    allowed = {"create in the work directory", "create in /tmp"}
    escaped = {k: v for k, v in writes.items() if k not in allowed and v == "ok"}
    net_ok = {k: v for k, v in result["net"].items() if not v.startswith("failed")}
    print(f"\nFIGURES sandbox: {len(writes) - len(allowed)} forbidden writes tried, "
          f"{len(escaped)} succeeded {sorted(escaped)}; {len(result['net'])} network probes, {len(net_ok)} "
          f"succeeded; interfaces {result['interfaces']}; CapEff {result['cap_eff']}")
    assert escaped == {}, (f"written on the host through the sandbox: {planted}", writes)
    assert planted == []
    assert {writes[k] for k in allowed} == {"ok"}, writes
    assert (work / "written").read_text() == "x"
    assert net_ok == {}, result["net"]
    assert result["interfaces"] == ["lo"], result["interfaces"]
    assert int(result["cap_eff"], 16) == 0, "the test command must hold no capabilities"
    # the sandbox's /tmp was private; nothing changed on the host or in the cached rootfs
    assert not Path("/tmp", tmp_name).exists()
    assert not (rootfs / "tmp" / tmp_name).exists()
    assert watched_after == watched_before
    assert rootfs_after == rootfs_before
    assert bundle_after == bundle_before
