"""isolate.proc.Runner: -v's streaming keeps what a captured run gives."""

from __future__ import annotations

import os
import sys
import threading

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
