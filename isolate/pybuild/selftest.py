"""CPython's own tests, run against a freshly built interpreter before it is cached.

The modules whose C code isolate builds (OpenSSL, SQLite, xz, bzip2, zlib, libffi,
mpdecimal, libuuid, expat) and the parts of the core a runtime leans on. Network-using
tests are off (``-u none``): test_ssl runs its offline tests. The counts are kept in the
cached interpreter's build-info.json.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from isolate.proc import Runner, clean_env

TESTS = (
    "test_ssl", "test_hashlib", "test_sqlite3", "test_lzma", "test_bz2", "test_zlib",
    "test_ctypes", "test_decimal", "test_json", "test_uuid", "test_datetime",
    "test_unicodedata", "test_unicode_file", "test_unicode_file_functions",
    "test_unicode_identifiers", "test_str", "test_xml_etree_c", "test_pyexpat",
)
_TOTAL = re.compile(r"^Total tests: (.*)$", re.M)
_FIELD = re.compile(r"(\w+)=([\d,]+)")
_RESULT = re.compile(r"^Result: (\S+)", re.M)


def run(runner: Runner, exe: Path, *, jobs: int, scratch: Path) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    argv: list[str | Path] = [exe, "-B", "-m", "test", f"-j{max(1, jobs)}", "-u", "none", "--timeout", "900",
            *TESTS]
    done = runner.run(argv, cwd=scratch, env=clean_env({"TMPDIR": str(scratch)}),
                      timeout=3600, check=False)
    out = done.stdout + done.stderr
    counts: dict[str, int] = {}
    m = _TOTAL.search(out)
    if m:
        counts = {k: int(v.replace(",", "")) for k, v in _FIELD.findall(m.group(1))}
    result = _RESULT.search(out)
    failed = counts.get("failures", 0) + counts.get("errors", 0)
    if not done.ok and not failed:
        failed = 1  # a crash, a timeout or a failing test file without counts
    return {
        "modules": list(TESTS),
        "run": counts.get("run", 0),
        "failed": failed,
        "skipped": counts.get("skipped", 0),
        "result": result.group(1) if result else ("TIMEOUT" if done.timed_out else "UNKNOWN"),
        "seconds": round(done.seconds, 1),
        "tail": "\n".join(out.rstrip().splitlines()[-25:]),
    }
