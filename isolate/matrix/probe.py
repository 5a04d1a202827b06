# Runs INSIDE a bundle, under the bundle's own interpreter (CPython 3.8+), on the host
# being tested. Not imported by isolate: it is copied next to the cell and run as
#   <bundle>/bin/python3 probe.py --bundle DIR --overlay DIR --out FILE -- <test argv>
# It adds the test overlay, records the runtime and host fingerprints, runs the test
# command in-process and records every test's outcome (unittest/testtools through a
# result object; pytest through its JUnit XML), then writes one JSON file.
from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import site
import subprocess
import sys
import sysconfig
import time
import traceback
import unittest
import xml.etree.ElementTree as ET

OUTCOMES: dict = {}


class Recorder(unittest.TestResult):
    """A unittest result that records each test's outcome (testtools adapts to it)."""

    def _set(self, test, outcome):
        tid = test.id()
        # a failure in a later phase (cleanup, sub-test) beats an earlier success
        order = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
        if order.get(outcome, 0) >= order.get(OUTCOMES.get(tid, "passed"), 0) or tid not in OUTCOMES:
            OUTCOMES[tid] = outcome

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "failed")

    def addError(self, test, err):
        super().addError(test, err)
        self._set(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "failed")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._set(test, "failed")


def run_unittest(argv):
    names = [a for a in argv if not a.startswith("-")]
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(names) if names else loader.discover(".")
    result = Recorder()
    suite.run(result)
    for test, _tb in result.errors:
        if test.id() not in OUTCOMES:  # module-level failures (import errors, setUpClass)
            OUTCOMES[test.id()] = "error"
    return 0 if result.wasSuccessful() else 1


def run_pytest(argv, workdir):
    import pytest  # from the test overlay

    xml = os.path.join(workdir, "junit.xml")
    code = pytest.main(["-p", "no:cacheprovider", "--junitxml", xml, *argv])
    if os.path.exists(xml):
        for case in ET.parse(xml).iter("testcase"):
            tid = "{}.{}".format(case.get("classname", ""), case.get("name", ""))
            outcome = "passed"
            for child in case:
                if child.tag in ("failure",):
                    outcome = "failed"
                elif child.tag == "error":
                    outcome = "error"
                elif child.tag == "skipped":
                    outcome = "skipped"
            OUTCOMES[tid] = outcome
    return int(code)


ROOTS = []  # (real path, label): paths below them are shown relative


def rel(path, root=None):
    path = os.path.realpath(path)
    for base, label in ROOTS:
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
        "executable": rel(sys.executable, bundle),
        "prefix": rel(sys.prefix, bundle),
        "sys_path": [rel(p, bundle) for p in sys.path],
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
                                         capture_output=True, text=True, timeout=20)
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
    p.add_argument("argv", nargs=argparse.REMAINDER)
    a = p.parse_args()
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    bundle = os.path.realpath(a.bundle)
    ROOTS.append((bundle, "<bundle>"))
    if a.overlay:
        ROOTS.append((os.path.realpath(a.overlay), "<overlay>"))
        site.addsitedir(os.path.join(a.overlay, "site-packages"))
    workdir = os.path.dirname(os.path.realpath(a.out))
    start = time.monotonic()
    record = {"runtime": runtime_fingerprint(bundle), "host": host_fingerprint()}
    code = None
    crash = None
    try:
        if argv[:2] == ["-m", "unittest"]:
            code = run_unittest(argv[2:])
        elif argv[:2] == ["-m", "pytest"]:
            code = run_pytest(argv[2:], workdir)
        elif argv[:1] == ["-m"]:
            sys.argv = argv[1:]
            runpy.run_module(argv[1], run_name="__main__")
            code = 0
        else:
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        crash = traceback.format_exc()
        code = 1
    record.update({"exit_code": code, "crash": crash, "tests": OUTCOMES,
                   "seconds": time.monotonic() - start})
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, a.out)
    sys.stdout.flush()
    os._exit(0)  # do not wait for threads a test suite left behind


if __name__ == "__main__":
    main()
