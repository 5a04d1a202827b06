# Runs under a bundle's copied interpreter (CPython 3.8+), before anything is installed
# into it. Not imported by isolate: isolate.bundle.interpreter reads this file and runs it
# as `<bundle>/python/bin/python3.X -I -B -S -c <this file>`.
"""Write the interpreter's site-packages directories as a JSON list to standard output
(Debian's CPython says dist-packages)."""

import json
import site


def main() -> None:
    print(json.dumps(site.getsitepackages()))


if __name__ == "__main__":
    main()
