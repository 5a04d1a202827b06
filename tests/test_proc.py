"""isolate.proc.Runner: -v's streaming keeps what a captured run gives."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from isolate.errors import CommandFailed
from isolate.proc import Runner, forks, process_pool


def test_streaming_runner_echoes_each_line_and_captures_both_streams():
    lines: list[str] = []
    code = "import sys; print('out1'); print('err1', file=sys.stderr); print('out2')"
    done = Runner(echo=lines.append).run([sys.executable, "-c", code])
    assert done.ok and done.stdout == "out1\nout2\n" and done.stderr == "err1\n"
    assert lines[0].startswith("$ ") and sorted(lines[1:]) == ["  err1", "  out1", "  out2"]


def test_streaming_runner_feeds_input_and_times_out():
    echoed: list[str] = []
    done = Runner(echo=echoed.append).run(
        [sys.executable, "-c", "print(input().upper())"], input="hi\n")
    assert done.stdout == "HI\n"
    with pytest.raises(CommandFailed, match="timed out after 1 s"):
        Runner(echo=echoed.append).run(
            [sys.executable, "-c", "import time; print('started', flush=True); "
             "time.sleep(30)"], timeout=1, what="sleeper")
    assert "  started" in echoed


_FORKED_CHILD = """
import os
from isolate.proc import forks, process_pool
assert forks(), "a fresh interpreter runs one thread"
pool = process_pool(2)
try:
    print(pool.submit(os.getppid).result() == os.getpid())
finally:
    pool.shutdown()
"""


def test_a_process_pool_is_forked_while_one_thread_runs() -> None:
    """In a fresh interpreter (this test process may run threads: pytest-xdist's), the
    pool's processes are this process's own children: forked."""
    done = Runner().run([sys.executable, "-c", _FORKED_CHILD], check=False)
    assert done.ok, done.stdout + done.stderr
    assert done.stdout.strip() == "True"


def test_with_another_thread_running_a_process_pool_comes_from_a_fork_server() -> None:
    """A thread may hold a lock that a forked child would inherit held: no fork then."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not forks()
        pool = process_pool(2, preload=["isolate.verify.scan"])
        try:
            assert pool.submit(os.getppid).result() != os.getpid()  # the fork server's child
        finally:
            pool.shutdown()
    finally:
        stop.set()
        other.join()


def test_a_thread_still_ending_in_the_kernel_is_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Python has joined it, the kernel still counts it for a moment: counted again."""
    import isolate.proc as proc_mod

    if not sys.platform.startswith("linux"):
        pytest.skip("forks() is Linux only")
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    counts = iter([["1", "2"], ["1", "2"], ["1"]])
    monkeypatch.setattr(proc_mod.os, "listdir", lambda path: next(counts))
    assert forks()
    # one that never ends (a thread Python did not start): no fork, after a few looks
    looks: list[str] = []
    monkeypatch.setattr(proc_mod.os, "listdir", lambda path: looks.append(path) or ["1", "2"])
    assert not forks()
    assert len(looks) == proc_mod._SETTLE_TRIES


_ECHO_WORKER = """
import sys
for line in sys.stdin:
    if line.strip() == "die":
        print("dying on purpose", file=sys.stderr, flush=True)
        sys.exit(7)
    print("warned " * 20000, file=sys.stderr)  # far more than a pipe holds, never read
    sys.stdout.write(line.upper())
    sys.stdout.flush()
"""


def test_worker_answers_line_by_line_and_its_death_names_its_error_output() -> None:
    with Runner().start([sys.executable, "-c", _ECHO_WORKER], what="echo worker") as w:
        assert [w.ask(x) for x in ("a", "bc", "a")] == ["A", "BC", "A"]
        with pytest.raises(CommandFailed, match=r"echo worker failed \(exit code 7\)") as err:
            w.ask("die")
        assert "dying on purpose" in (err.value.details or "")
        with pytest.raises(CommandFailed):  # and stays failed
            w.ask("a")


def test_worker_closes_at_the_end_of_its_input_and_kill_ends_a_stuck_one() -> None:
    w = Runner().start([sys.executable, "-c", _ECHO_WORKER], what="echo worker")
    assert w.ask("x") == "X"
    w.close()
    assert w._proc.returncode == 0
    stuck = Runner().start([sys.executable, "-c", "import time; time.sleep(60)"],
                           what="sleeper")
    stuck.kill()
    assert stuck._proc.returncode is not None and stuck._proc.returncode < 0


def test_worker_that_cannot_start_is_an_environment_problem(tmp_path: Path) -> None:
    from isolate.errors import EnvironmentProblem

    with pytest.raises(EnvironmentProblem, match="not found"):
        Runner().start([str(tmp_path / "no-such-program")], what="nothing")


def test_a_worker_that_does_not_answer_in_time_is_killed_and_says_so() -> None:
    w = Runner().start([sys.executable, "-c", "import time, sys; sys.stdin.readline(); "
                        "time.sleep(60)"], what="slow worker")
    with pytest.raises(CommandFailed, match=r"slow worker failed \(timed out\)"):
        w.ask("hello", timeout=0.5)
    w.close()
