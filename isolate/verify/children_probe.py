# Runs INSIDE a bundle, under the bundle's own interpreter (CPython 3.8+). Not imported by
# isolate: `isolate verify` copies it out of the bundle and runs it as
#   <bundle>/bin/python3 children_probe.py --out FILE
# once in a clean environment and once in the hostile one (isolate.hostile_env).
# It starts sys.executable the ways an app does (subprocess with -c, multiprocessing's
# spawn and forkserver, os.execv after a fork) and writes, per way, what the child sees:
# its flags, sys.path, prefixes, where a few shadowed modules come from and which
# breakpoint hook runs. The two files must be the same.
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

MODULES = ("base64", "colorsys", "quopri", "json")
TIMEOUT = 60.0
CHILD = "--child"
HOW = ("subprocess", "spawn", "forkserver", "execv")


def view() -> dict:
    """What this process sees of its start-up."""
    path = list(sys.path)
    flags = {name: int(getattr(sys.flags, name))
             for name in ("ignore_environment", "no_user_site", "isolated", "safe_path",
                          "no_site", "dont_write_bytecode")
             if hasattr(sys.flags, name)}
    modules = {}
    for name in MODULES:
        try:
            modules[name] = getattr(__import__(name), "__file__", None)
        except BaseException as exc:  # a shadow raises ImportError; anything else is news
            modules[name] = "import failed: %s: %s" % (type(exc).__name__, exc)
    return {"flags": flags, "path": path, "prefix": sys.prefix,
            "base_prefix": sys.base_prefix, "executable": sys.executable,
            "base_executable": getattr(sys, "_base_executable", sys.executable),
            "modules": modules, "breakpoint": _breakpoint_hook()}


def _breakpoint_hook() -> str:
    """"pdb" when breakpoint() reaches pdb.set_trace (PYTHONBREAKPOINT ignored)."""
    import pdb
    import warnings

    called = []
    original = pdb.set_trace
    pdb.set_trace = lambda *a, **k: called.append("pdb")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Ignoring unimportable $PYTHONBREAKPOINT"
            breakpoint()
    except BaseException as exc:
        return "breakpoint() raised %s" % type(exc).__name__
    finally:
        pdb.set_trace = original
    return called[0] if called else "another hook"


def write_view(out: str) -> None:
    with open(out, "w", encoding="utf-8") as f:
        json.dump(view(), f, sort_keys=True)


def _read(out: str, what: str) -> dict:
    try:
        with open(out, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"error": what}


def by_subprocess(out: str) -> dict:
    code = ("import runpy, sys; sys.argv[:] = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code, __file__, CHILD, out],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=TIMEOUT)
    return _read(out, "the child exited with %s: %s" % (done.returncode, done.stdout[-2000:]))


def by_multiprocessing(method: str, out: str) -> dict:
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    proc = ctx.Process(target=write_view, args=(out,))
    proc.start()
    proc.join(TIMEOUT)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return {"error": "the child did not finish in %g s" % TIMEOUT}
    return _read(out, "the child exited with %s" % proc.exitcode)


def by_execv(out: str) -> dict:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(sys.executable, [sys.executable, __file__, CHILD, out])
        finally:
            os._exit(127)
    deadline = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return {"error": "the child did not finish in %g s" % TIMEOUT}
        time.sleep(0.02)
    return _read(out, "the child exited with status %s" % status)


def main(argv: list) -> int:
    if argv[:1] == [CHILD]:
        write_view(argv[1])
        return 0
    out = argv[argv.index("--out") + 1]
    work = os.path.dirname(os.path.abspath(out))
    result = {"self": view()}
    for how in HOW:
        child_out = os.path.join(work, "child-%s.json" % how)
        try:
            if how == "subprocess":
                result[how] = by_subprocess(child_out)
            elif how == "execv":
                result[how] = by_execv(child_out)
            else:
                result[how] = by_multiprocessing(how, child_out)
        except Exception as exc:
            result[how] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    return 0


def console() -> int:
    """Entry point, when an app ships this file as a console script (the tests do)."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
