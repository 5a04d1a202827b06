# Runs under an interpreter that `isolate python build` has just built. Not imported by
# isolate: isolate.pybuild.build reads this file and runs it as
# `<python> -B -c <this file> MODULE...`.
"""Import each MODULE named on the command line; write the ones that fail, as a JSON list
of ``"name (error)"``, to standard output."""

import importlib
import json
import sys


def main() -> None:
    missing = []
    for m in sys.argv[1:]:
        try:
            importlib.import_module(m)
        except ImportError as e:
            missing.append("%s (%s)" % (m, e))
    print(json.dumps(missing))


if __name__ == "__main__":
    main()
