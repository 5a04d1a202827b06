# Runs INSIDE a bundle, under the bundle's own interpreter (CPython 3.8+). Not imported by
# isolate: `isolate verify` (isolate.verify.probes.import_smoke) reads this file and runs it
# as `<bundle>/python/bin/python3.X -I -B -W ignore -c <this file> RESULTS`, the module
# names as a JSON list on standard input.
"""Import every module named on standard input, writing one JSON line per module to
RESULTS as it goes (a ``start`` line first), so that a crash names its module."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
import warnings


def run(names: list[str], results: str) -> None:
    with open(results, "w", encoding="utf-8") as out:
        for name in names:
            out.write(json.dumps({"start": name}) + "\n")
            out.flush()
            rec = {"module": name, "ok": True}
            try:
                importlib.import_module(name)
            except BaseException as exc:
                rec["ok"] = False
                rec["error"] = traceback.format_exception_only(type(exc), exc)[-1].strip()
                missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) \
                    else None
                rec["missing"] = missing
                if missing:
                    try:
                        top = missing.partition(".")[0]
                        rec["missing_found"] = importlib.util.find_spec(top) is not None
                    except BaseException:
                        rec["missing_found"] = True
            out.write(json.dumps(rec) + "\n")
            out.flush()


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    run(json.loads(sys.stdin.read()), sys.argv[1])
    os._exit(0)  # skip interpreter shutdown: threads or atexit hooks of imported modules
