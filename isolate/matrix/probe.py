# Runs INSIDE a bundle, under the bundle's own interpreter (CPython 3.8+), on the host
# being tested. Not imported by isolate: it is copied next to the cell and run as
#   <bundle>/bin/python3 probe.py --bundle DIR --overlay DIR --out FILE [--junit PATH] -- <argv>
# It adds the test overlay, records the runtime and host fingerprints, runs the test
# command in-process with the runner's own command line, records every test's outcome
# and writes one JSON file. Where the outcomes come from ("outcomes_from"):
#   unittest   -m unittest ...: unittest.main with a result class that records outcomes
#   pytest     -m pytest ... / pytest ...: pytest.main, outcomes from its JUnit XML
#   stestr     -m stestr ... / stestr ...: stestr's CLI, outcomes from the subunit v2
#              stream it stores in its repository
#   junit      any other command, with --junit: the JUnit XML file the command wrote
#   exit-code  any other command: one outcome named after the command, from its exit code
# A command that collects no test or fails before any test runs is recorded as an
# "error" with the runner's own message (paths below the bundle, the overlay and the
# working directory replaced by labels, durations removed: the same text on every host).
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import runpy
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import unittest
import xml.etree.ElementTree as ET

SITE_PACKAGES = "{site-packages}"  # in the test command: the runtime's site-packages
OUTCOMES: dict = {}
COLLECTION_ERRORS: list = []  # messages of test modules that could not be loaded
ORDER = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def record(tid, outcome):
    """A failure in a later phase (cleanup, sub-test) beats an earlier success."""
    if tid not in OUTCOMES or ORDER.get(outcome, 0) >= ORDER.get(OUTCOMES[tid], 0):
        OUTCOMES[tid] = outcome


# -- the output the runner prints, kept to quote its own message ---------------------

class Tee(object):
    """Copies file descriptors 1 and 2 to their original targets and keeps the last
    ``limit`` bytes, so that a runner's message (its own or a child's) can be quoted."""

    def __init__(self, limit=65536):
        self.limit = limit
        self.data = b""
        self.saved = None
        self.thread = None

    def start(self):
        sys.stdout.flush()
        sys.stderr.flush()
        read, write = os.pipe()
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(target=self._pump, args=(read,))
        self.thread.daemon = True
        self.thread.start()

    def _pump(self, read):
        while True:
            try:
                chunk = os.read(read, 65536)
            except OSError:
                return
            if not chunk:
                return
            try:
                os.write(self.saved[1], chunk)
            except OSError:
                pass
            self.data = (self.data + chunk)[-self.limit:]

    def stop(self):
        if self.saved is None:
            return
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        # children that outlive the command keep the pipe open: do not wait for them
        self.thread.join(2.0)

    def text(self):
        return self.data.decode("utf-8", "replace")


LABELS = []  # (path, label): paths in messages and fingerprints are shown by label
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_DURATION = re.compile(r"\s+in [0-9.]+s\b( \([0-9:]+\))?")
_EXCEPTION = re.compile(r"^(?:E\s+)?((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)\b:?.*)$")
_NO_TESTS = re.compile(r"Ran 0 tests|NO TESTS RAN|no tests ran|collected 0 items|No tests? (?:were )?(?:found|collected)",
                       re.IGNORECASE)


def scrub(text):
    text = _ANSI.sub("", text)
    for path, label in LABELS:
        text = text.replace(path, label)
    return _DURATION.sub("", text)


def runner_message(output):
    """The line of the runner's output that says what went wrong, the same on every host:
    the last exception line, else the last usage error, else the "no tests" line, else
    the last line."""
    lines = [scrub(line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not set(line) <= set("=-_~*! ")]
    for pattern in (_EXCEPTION, re.compile(r"(^|\s)error: ", re.IGNORECASE), _NO_TESTS):
        for line in reversed(lines):
            m = pattern.search(line)
            if m:
                return m.group(1) if pattern is _EXCEPTION else line
    return lines[-1] if lines else "(no output)"


def error_summary(err):
    """``ImportError: Failed to import test module: x: ModuleNotFoundError: ...``"""
    exctype, value = err[0], err[1]
    text = str(value).strip().splitlines()
    msg = exctype.__name__
    if text:
        msg += ": " + text[0]
        if len(text) > 1:
            msg += ": " + text[-1].strip()
    return scrub(msg)


# -- unittest: its own command line, a result class that records --------------------

class RecordingResult(unittest.TextTestResult):
    """unittest's text result (what ``python -m unittest`` prints) that also records each
    test's outcome; testtools cases adapt to it."""

    def addSuccess(self, test):
        super(RecordingResult, self).addSuccess(test)
        record(test.id(), "passed")

    def addFailure(self, test, err):
        super(RecordingResult, self).addFailure(test, err)
        record(test.id(), "failed")

    def addError(self, test, err):
        super(RecordingResult, self).addError(test, err)
        if type(test).__name__ == "_FailedTest":  # a module or name that did not load
            COLLECTION_ERRORS.append(error_summary(err))
        else:  # including setUpClass/setUpModule failures (unittest's _ErrorHolder)
            record(test.id(), "error")

    def addSkip(self, test, reason):
        super(RecordingResult, self).addSkip(test, reason)
        record(test.id(), "skipped")

    def addExpectedFailure(self, test, err):
        super(RecordingResult, self).addExpectedFailure(test, err)
        record(test.id(), "passed")

    def addUnexpectedSuccess(self, test):
        super(RecordingResult, self).addUnexpectedSuccess(test)
        record(test.id(), "failed")

    def addSubTest(self, test, subtest, err):
        super(RecordingResult, self).addSubTest(test, subtest, err)
        if err is not None:
            record(test.id(), "failed")


class RecordingRunner(unittest.TextTestRunner):
    resultclass = RecordingResult


def run_unittest(args):
    prog = unittest.main(module=None, argv=["python -m unittest", *list(args)],
                         testRunner=RecordingRunner, exit=False)
    return 0 if prog.result.wasSuccessful() and prog.result.testsRun else (
        1 if prog.result.testsRun else 5)


# -- pytest and any command that writes JUnit XML ------------------------------------

def read_junit(path):
    for case in ET.parse(path).iter("testcase"):
        tid = "{}.{}".format(case.get("classname", ""), case.get("name", ""))
        outcome = "passed"
        for child in case:
            if child.tag == "error" and "collection failure" in (child.get("message") or ""):
                COLLECTION_ERRORS.append(runner_message(child.text or child.get("message") or ""))
                outcome = None
                break
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "error"
            elif child.tag == "skipped":
                outcome = "skipped"
        if outcome is not None:
            record(tid, outcome)


def run_pytest(args, workdir):
    import pytest  # from the test overlay

    xml = os.path.join(workdir, "junit.xml")
    if os.path.exists(xml):
        os.unlink(xml)
    code = pytest.main(["-p", "no:cacheprovider", "--junitxml", xml, *list(args)])
    if os.path.exists(xml):
        read_junit(xml)
    return int(code)


# -- stestr: its CLI, outcomes from the subunit stream in its repository -------------

SUBUNIT_OUTCOMES = {"success": "passed", "fail": "failed", "skip": "skipped",
                    "xfail": "passed", "uxsuccess": "failed"}


def stestr_repository(args):
    here, repo = os.getcwd(), None
    for i, arg in enumerate(args):
        for opt, key in (("-d", "here"), ("--here", "here"), ("-u", "repo"), ("--repo-url", "repo")):
            value = None
            if arg == opt and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(opt + "="):
                value = arg[len(opt) + 1:]
            if value is not None:
                if key == "here":
                    here = value
                else:
                    repo = value
    return repo or os.path.join(here, ".stestr")


def stream_files(repo):
    try:
        return set(n for n in os.listdir(repo) if n.isdigit())
    except OSError:
        return set()


def read_subunit(path):
    """Outcomes from a subunit stream: version 2 (packets start with 0xB3), or version 1,
    which stestr's file repository stores."""
    import io

    import subunit  # python-subunit, from the test overlay
    import testtools

    def on_test(test):
        outcome = SUBUNIT_OUTCOMES.get(test["status"])
        if outcome is not None:
            record(test["id"], outcome)

    with open(path, "rb") as f:
        data = f.read()
    result = testtools.StreamToDict(on_test)
    if data[:1] == b"\xb3":
        stream = subunit.ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout")
        result.startTestRun()
        try:
            stream.run(result)
        finally:
            result.stopTestRun()
    else:
        v1 = testtools.ExtendedToStreamDecorator(result)
        v1.startTestRun()
        try:
            subunit.ProtocolTestCase(io.BytesIO(data)).run(v1)
        finally:
            v1.stopTestRun()


def python_for_children():
    """stestr starts its workers with ``${PYTHON}`` (else ``sys.executable``, unquoted,
    which breaks on a path with a space): a path without one that runs this interpreter
    isolated, as the launchers do."""
    d = tempfile.mkdtemp(prefix="isolate-python-")
    if " " in d:  # ${PYTHON} is split on spaces by the shell
        d = tempfile.mkdtemp(prefix="isolate-python-", dir="/tmp")
    path = os.path.join(d, "python")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec '%s' -I \"$@\"\n" % os.path.realpath(sys.executable).replace("'", "'\\''"))
    os.chmod(path, 0o755)
    return path


def run_stestr(argv, args, start):
    repo = stestr_repository(args)
    before = stream_files(repo)
    if not os.environ.get("PYTHON"):
        os.environ["PYTHON"] = python_for_children()
    code = 0
    try:
        code = run_entry(argv if argv[:1] == ["-m"] else ["stestr", *list(args)], start)
    finally:
        for name in sorted(stream_files(repo) - before, key=int):
            read_subunit(os.path.join(repo, name))
    return code


# -- any other command ---------------------------------------------------------------

def console_script(name):
    from importlib import metadata

    eps = metadata.entry_points()
    group = eps.select(group="console_scripts") if hasattr(eps, "select") else eps.get("console_scripts", ())
    for ep in group:
        if ep.name == name:
            return ep
    return None


def run_entry(argv, start):
    """Run ``argv`` (what follows ``python``: ``-m mod ...``, ``-c code ...``, a script, or
    a console script's name) in this process; return its exit code."""
    try:
        if argv[:1] == ["-m"]:
            sys.argv = argv[1:]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        elif argv[:1] == ["-c"]:
            sys.argv = ["-c", *argv[2:]]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        elif os.sep not in argv[0] and not os.path.exists(argv[0]) and console_script(argv[0]):
            sys.argv = list(argv)
            code = console_script(argv[0]).load()()
            return code if isinstance(code, int) else (0 if code is None else 1)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        return exit_code(exc)
    return 0


def exit_code(exc):
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def kind_of(argv, junit):
    head = argv[1] if argv[:1] == ["-m"] and len(argv) > 1 else (argv[0] if argv else "")
    if head in ("unittest", "pytest", "stestr") and (argv[:1] == ["-m"] or head != "unittest"):
        return head
    if head == "py.test":
        return "pytest"
    return "junit" if junit else "exit-code"


def run_command(argv, kind, junit, workdir, start):
    args = argv[2:] if argv[:1] == ["-m"] else argv[1:]
    if kind == "unittest":
        return run_unittest(args)
    if kind == "pytest":
        return run_pytest(args, workdir)
    if kind == "stestr":
        return run_stestr(argv, args, start)
    code = run_entry(argv, start)
    if kind == "exit-code":
        OUTCOMES["command: " + " ".join(argv)] = "passed" if code == 0 else "failed"
    elif written(junit, start):
        read_junit(junit)
    return code


def written(path, start):
    try:
        return os.path.getmtime(path) >= start - 1
    except OSError:
        return False


def failure_before_tests(kind, code, output, junit, start):
    """Why no test outcome was recorded, in the runner's words; None if tests ran."""
    if kind == "junit" and not written(junit, start):
        return "the test command did not write the JUnit XML file {} (exit code {}): {}".format(
            scrub(junit), code, runner_message(output))
    if COLLECTION_ERRORS:
        more = len(COLLECTION_ERRORS) - 1
        return "tests could not be collected: {}{}".format(
            COLLECTION_ERRORS[0], " (and {} more)".format(more) if more else "")
    if kind == "exit-code" or OUTCOMES:
        return None
    if code in (0, 5):  # 5: "no tests ran" for pytest and (3.12+) unittest
        return "the test command ran no tests: {}".format(runner_message(output))
    return "the test command failed before any test ran (exit code {}): {}".format(
        code, runner_message(output))


# -- fingerprints --------------------------------------------------------------------

def rel(path):
    path = os.path.realpath(path)
    for base, label in LABELS:
        if path == base or path.startswith(base + os.sep):
            return label + path[len(base):]
    return path


def runtime_fingerprint(bundle):
    try:
        from importlib import metadata
        dists = sorted({"{}=={}".format(d.metadata["Name"].lower(), d.version)
                        for d in metadata.distributions()})
    except Exception as exc:  # pragma: no cover
        dists = ["error: %s" % exc]
    tags = []
    try:
        from packaging import tags as ptags
        for t in ptags.sys_tags():
            key = "{}-{}".format(t.interpreter, t.abi)
            if key not in tags:
                tags.append(key)
    except Exception as exc:
        tags = ["unavailable: %s" % exc]
    fp = {
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "executable": rel(sys.executable),
        "prefix": rel(sys.prefix),
        "sys_path": [rel(p) for p in sys.path],
        "isolated": bool(sys.flags.isolated),
        "distributions": dists,
        "interpreter_tags": tags,
        "stdlib_platform": sysconfig.get_platform(),
    }
    for mod, attr in (("ssl", "OPENSSL_VERSION"), ("sqlite3", "sqlite_version"),
                      ("zlib", "ZLIB_RUNTIME_VERSION"), ("pyexpat", "EXPAT_VERSION")):
        try:
            fp[mod] = str(getattr(__import__(mod), attr))
        except Exception as exc:
            fp[mod] = "unavailable: %s" % exc.__class__.__name__
    try:
        with open(os.path.join(bundle, "isolate-manifest.json"), "rb") as f:
            import hashlib
            fp["manifest_sha256"] = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        fp["manifest_sha256"] = None
    return fp


def host_fingerprint():
    osr = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                osr[k] = v.strip('"')
    except OSError:
        pass
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else ""
    host_py = None
    for name in ("python3", "python", "python2"):
        for d in os.environ.get("PATH", "").split(os.pathsep):
            exe = os.path.join(d, name)
            if os.path.isfile(exe) and os.access(exe, os.X_OK):
                try:
                    out = subprocess.run([exe, "-c", "import sys; sys.stdout.write("
                                          "'%d.%d.%d' % sys.version_info[:3])"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         universal_newlines=True, timeout=20)
                    host_py = {"path": exe, "version": out.stdout.strip() or out.stderr.strip()}
                except Exception as exc:
                    host_py = {"path": exe, "version": "error: %s" % exc}
                break
        if host_py:
            break
    return {
        "distro": osr.get("PRETTY_NAME") or osr.get("ID", "unknown"),
        "distro_id": osr.get("ID", ""),
        "release": osr.get("VERSION_ID", ""),
        "glibc": libc,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "platform_python": host_py,
        "env": {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
                                                 "LD_LIBRARY_PATH", "LC_ALL")},
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--overlay", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--junit", default="")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    a = p.parse_args()
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    purelib = sysconfig.get_paths()["purelib"]
    argv = [arg.replace(SITE_PACKAGES, purelib) for arg in argv]
    bundle = os.path.realpath(a.bundle)
    workdir = os.path.dirname(os.path.realpath(a.out))
    LABELS.append((bundle, "<bundle>"))
    if a.overlay:
        LABELS.append((os.path.realpath(a.overlay), "<overlay>"))
        site.addsitedir(os.path.join(a.overlay, "site-packages"))
    LABELS.append((os.path.realpath(os.getcwd()), "<cwd>"))
    LABELS.append((workdir, "<work>"))
    LABELS.sort(key=lambda pair: -len(pair[0]))  # the longest (innermost) path first
    start = time.time()
    clock = time.monotonic()
    record_ = {"runtime": runtime_fingerprint(bundle), "host": host_fingerprint()}
    junit = os.path.join(os.getcwd(), a.junit) if a.junit else ""
    kind = kind_of(argv, junit)
    code = None
    crash = None
    tee = Tee()
    tee.start()
    try:
        code = run_command(argv, kind, junit, workdir, start)
    except SystemExit as exc:  # a usage error, --help, or sys.exit from the command
        code = exit_code(exc)
    except BaseException:  # as Python would: print the traceback, exit code 1
        crash = traceback.format_exc()
        sys.stderr.write(crash)
        crash = scrub(crash)
        code = 1
    finally:
        tee.stop()
    error = failure_before_tests(kind, code, tee.text(), junit, start)
    record_.update({"exit_code": code, "crash": crash, "tests": OUTCOMES,
                    "outcomes_from": kind, "error": error,
                    "collection_errors": COLLECTION_ERRORS,
                    "seconds": time.monotonic() - clock})
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record_, f)
    os.replace(tmp, a.out)
    sys.stdout.flush()
    os._exit(0)  # do not wait for threads a test suite left behind


if __name__ == "__main__":
    main()
