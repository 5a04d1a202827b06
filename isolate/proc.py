"""The only module of isolate that starts subprocesses.

Everything else asks a ``Runner`` to run a command, so tests can watch or fake it, and
so that every command gets the same treatment: an explicit environment (never the
caller's pip configuration by accident), a timeout, and failures that carry the tail of
the output. CPU-bound Python work that threads cannot spread over cores (the GIL) asks
``process_pool`` for worker processes.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isolate.credentials import redact_text
from isolate.errors import CommandFailed, EnvironmentProblem

if TYPE_CHECKING:
    from concurrent.futures import Executor, ProcessPoolExecutor
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

TAIL_LINES = 40

# Variables that would make pip, uv or Python do something other than what we ask.
_LEAKY_PREFIXES = ("PIP_", "UV_", "PYTHON", "VIRTUAL_ENV", "CONDA_", "PYENV_VERSION")


@dataclass(frozen=True, kw_only=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = TAIL_LINES) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).rstrip()
        return "\n".join(text.splitlines()[-lines:])


def clean_env(extra: Mapping[str, str] | None = None, *, keep: Sequence[str] = ()) -> dict[str, str]:
    """The caller's environment less pip/uv/Python configuration, plus ``extra``.

    pip's configuration files are switched off (``PIP_CONFIG_FILE=/dev/null``): isolate
    passes the index, constraints and options it means on the command line.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k in keep or not k.startswith(_LEAKY_PREFIXES)
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


class Runner:
    """Runs commands. Subclass or replace in tests.

    ``echo``: called with each command line and each line of its output as it comes
    (``isolate -v``), credentials redacted; the output is captured all the same.
    """

    def __init__(self, *, echo: Callable[[str], None] | None = None):
        self.echo = echo

    @property
    def verbose(self) -> bool:
        """Whether the user sees the commands' output: tools may then be asked for more."""
        return self.echo is not None

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
        input: str | None = None,
        what: str | None = None,
    ) -> Completed:
        """Run ``argv`` to the end and capture its output.

        ``check`` raises ``CommandFailed`` (naming ``what`` and carrying the output's
        tail) on a non-zero exit or a timeout. A missing executable is an
        ``EnvironmentProblem``.
        """
        args = tuple(os.fspath(a) for a in argv)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                args,
                env=dict(env) if env is not None else clean_env(),
                cwd=cwd,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise EnvironmentProblem(
                f"cannot run {args[0]!r}: not found",
                hint="install it or put it on PATH",
            ) from exc
        except OSError as exc:  # not executable, not a program (ENOEXEC), ...
            raise EnvironmentProblem(f"cannot run {args[0]!r}: {exc.strerror or exc}",
                                     hint="check that it is an executable for this machine"
                                     ) from exc
        timed_out = False
        if self.echo is not None:
            shown = [a if "\n" not in a else f"<script of {a.count(chr(10)) + 1} lines>"
                     for a in args]
            self.echo("$ " + redact_text(shlex.join(shown)))
        try:
            if self.echo is not None:
                out, err, timed_out = _stream(proc, self.echo, input=input, timeout=timeout)
            else:
                out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            try:  # a daemon the command left behind may still hold the pipes
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
                proc.wait()
                out, err = "", "(output lost: the pipes stayed open after the kill)"
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        done = Completed(
            argv=args,
            returncode=proc.returncode,
            stdout=out,
            stderr=err,
            seconds=time.monotonic() - start,
            timed_out=timed_out,
        )
        if check and not done.ok:
            label = what or shlex.join(args[:3])
            reason = f"timed out after {timeout:g} s" if timed_out else f"exit code {done.returncode}"
            raise CommandFailed(redact_text(f"{label} failed ({reason})"),
                                details=redact_text(done.tail()))
        return done


    def start(self, argv: Sequence[str | os.PathLike[str]], *,
              env: Mapping[str, str] | None = None, what: str) -> Worker:
        """Start ``argv`` as a ``Worker``: a long-running command asked one line at a
        time. ``what`` names it in errors. Close it when done (it is a context manager)."""
        args = tuple(os.fspath(a) for a in argv)
        if self.echo is not None:
            self.echo("$ " + redact_text(shlex.join(args)) + "  (a worker)")
        return Worker(args, env=dict(env) if env is not None else clean_env(), what=what)


class Worker:
    """A command that answers each line written to its standard input with one line on
    its standard output, kept running for many questions (``Runner.start``): the work of
    starting an interpreter is paid once, not once per question.

    Its standard error goes to a temporary file, read back for the error when the
    command dies: a pipe nobody reads would stall a command that warns a lot.
    """

    def __init__(self, args: tuple[str, ...], *, env: dict[str, str], what: str) -> None:
        import tempfile

        self.args = args
        self.what = what
        self._timed_out = False
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        try:
            self._proc = subprocess.Popen(
                args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._err, text=True, errors="replace", start_new_session=True)
        except FileNotFoundError as exc:
            self._err.close()
            raise EnvironmentProblem(f"cannot run {args[0]!r}: not found",
                                     hint="install it or put it on PATH") from exc
        except OSError as exc:
            self._err.close()
            raise EnvironmentProblem(f"cannot run {args[0]!r}: {exc.strerror or exc}",
                                     hint="check that it is an executable for this machine"
                                     ) from exc

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        """Send ``line`` (one line, no newline in it) and return the answer's line.
        ``CommandFailed``, with the tail of the command's standard error, when the
        command ends instead of answering, or does not answer within ``timeout``
        seconds (it is killed then)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, self._expire)
            timer.daemon = True
            timer.start()
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        except (BrokenPipeError, ValueError):
            answer = ""
        finally:
            if timer is not None:
                timer.cancel()
        if not answer.endswith("\n"):
            raise self._failed()
        return answer[:-1]

    def _expire(self) -> None:
        self._timed_out = True
        _kill_group(self._proc)

    def _failed(self) -> CommandFailed:
        try:
            code = self._proc.wait(timeout=10)
            reason = "timed out" if self._timed_out else f"exit code {code}"
        except subprocess.TimeoutExpired:
            _kill_group(self._proc)
            self._proc.wait()
            reason = "it stopped answering"
        self._err.seek(0)
        tail = "\n".join(self._err.read().decode("utf-8", "replace").rstrip()
                         .splitlines()[-TAIL_LINES:])
        return CommandFailed(redact_text(f"{self.what} failed ({reason})"),
                             details=redact_text(tail))

    def close(self, *, timeout: float = 10.0) -> None:
        """End the command: its standard input is closed (it should end at that), and
        it is killed when it does not end within ``timeout`` seconds."""
        try:
            if self._proc.stdin is not None:
                try:
                    self._proc.stdin.close()
                except BrokenPipeError:
                    pass
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self._proc)
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        finally:
            self._err.close()

    def kill(self) -> None:
        """End the command at once (its process group), and reap it."""
        _kill_group(self._proc)
        self.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.kill()


def _stream(proc: subprocess.Popen[str], echo: Callable[[str], None], *, input: str | None,
            timeout: float | None) -> tuple[str, str, bool]:
    """``communicate`` that also hands every line to ``echo`` as it arrives; on a
    timeout the process group is killed and what was read is returned."""
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    lock = threading.Lock()

    def pump(name: str, pipe: object) -> None:
        for line in iter(pipe.readline, ""):  # type: ignore[attr-defined]
            chunks[name].append(line)
            with lock:
                echo("  " + redact_text(line.rstrip("\n")))

    threads = [threading.Thread(target=pump, args=(n, p), daemon=True)
               for n, p in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    if proc.stdin is not None:
        try:
            proc.stdin.write(input or "")
            proc.stdin.close()
        except BrokenPipeError:
            pass
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    for t in threads:
        t.join(timeout=10 if timed_out else None)  # a daemon left behind may hold the pipes
    return "".join(chunks["out"]), "".join(chunks["err"]), timed_out


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


FORK = "fork"
FORKSERVER = "forkserver"


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def process_pool(workers: int, *, preload: Sequence[str] = (), method: str | None = None
                 ) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes for CPU-bound Python work, its processes started.

    Forked (fast: no interpreter to start, nothing to import, the caller's data already
    there) when this process runs a single thread, on Linux: then no other thread can hold
    a lock (in OpenSSL, malloc, an I/O buffer) that the children would inherit held. Else
    the processes are forked from a fork server, a fresh single-threaded interpreter that
    imports ``preload`` once (about 0.2 s to start). ``method`` forces one of the two.

    The processes are started here, before this returns, so that threads the caller starts
    later do not matter. Raises ``OSError`` (or another error of ``multiprocessing``) when
    they cannot be started, and their futures ``BrokenProcessPool`` when they die; callers
    fall back to threads. Shut the pool down when done.
    """
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(method, preload))
    try:
        # A fork pool forks all its processes at the first submit, before its own manager
        # thread starts; a fork server's pool starts one per submit while none is idle.
        for _ in range(workers):
            pool.submit(os.getpid)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


def release_pool(pool: Executor) -> Callable[[], None]:
    """Shut ``pool`` down without waiting: its processes end on their own once the work
    it holds is done, while this process goes on. Returns what waits for them (about
    nothing when called a little later: they have ended by then), so that the caller
    leaves no thread behind, which would keep ``forks()`` false."""
    # (CPython's ProcessPoolExecutor forgets the thread that joins its processes on a
    # shutdown that does not wait; it is taken first, to join it later)
    thread = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=False)
    if isinstance(thread, threading.Thread):
        return thread.join
    return lambda: pool.shutdown(wait=True)


def child_process(target: Callable[..., None], *args: object, preload: Sequence[str] = (),
                  method: str | None = None) -> tuple[BaseProcess, Connection]:
    """``target(conn, *args)`` started in a child process, and the receiving end of the
    one-way pipe whose sending end is ``conn``: a producer on another core.

    Started as ``process_pool`` starts its processes: forked while this process runs one
    thread, else from the fork server (which imports ``preload`` once); ``method`` forces
    one. The child is a daemon (ended when this process exits normally); once the pipe's
    reading end is closed (``stop_child``, or this process dying), its next write fails
    with ``BrokenPipeError``. Raises ``OSError`` (or another error of ``multiprocessing``)
    when it cannot be started.
    """
    ctx = _context(method, preload)
    receiving, sending = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(sending, *args), daemon=True)
    try:
        child.start()
    except BaseException:
        receiving.close()
        raise
    finally:
        sending.close()  # the child holds its own copy
    return child, receiving


def _context(method: str | None, preload: Sequence[str]) -> Any:
    """The ``multiprocessing`` context ``process_pool`` and ``child_process`` start their
    processes with: ``method``, by default fork while this process runs one thread, else
    the fork server, which imports ``preload`` once."""
    import multiprocessing

    if method is None:
        method = FORK if forks() else FORKSERVER
    ctx = multiprocessing.get_context(method)
    if method == FORKSERVER:
        ctx.set_forkserver_preload(list(preload))
    return ctx


def stop_child(child: BaseProcess, conn: Connection, *, timeout: float = 5.0) -> None:
    """Close the pipe from ``child`` (it stops at its next send) and reap it; a child that
    does not end within ``timeout`` seconds is killed."""
    conn.close()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()


_SETTLE_TRIES, _SETTLE_SECONDS = 5, 0.002


def forks() -> bool:
    """Whether ``process_pool`` would fork now: this process runs one thread only
    (counted by the kernel, so threads that Python did not start count too), on Linux.
    False when that cannot be told.

    A thread that Python has joined may still be ending in the kernel for a moment (on a
    busy machine, long enough to be counted): while Python knows of no other thread,
    the count is taken again, ``_SETTLE_TRIES`` times ``_SETTLE_SECONDS`` apart."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        for _ in range(_SETTLE_TRIES):
            if len(os.listdir("/proc/self/task")) == 1:
                return True
            if threading.active_count() > 1:  # a thread that runs on
                return False
            time.sleep(_SETTLE_SECONDS)
    except OSError:
        pass
    return False
