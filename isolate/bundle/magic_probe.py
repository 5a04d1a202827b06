# Runs under a bundle's own interpreter (CPython 3.8+). Not imported by isolate:
# isolate.bundle.bytecode reads this file and runs it as
# `<bundle>/python/bin/python3.X -I -B -c <this file>`.
"""Write the interpreter's byte-code magic number (hex) and cache tag to standard output,
the key of the byte-code cache and the name of each ``.pyc``."""

import importlib.util
import sys


def main() -> None:
    print(importlib.util.MAGIC_NUMBER.hex(), sys.implementation.cache_tag)


if __name__ == "__main__":
    main()
