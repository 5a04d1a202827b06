# Runs under the CPython that a bundle will copy (3.8+), started WITHOUT any flag: the
# question is what the executable does by itself. Not imported by isolate:
# isolate.bundle.isolated_main reads this file and runs it as `<python> -c <this file>`.
"""Write 1 when this interpreter ignores PYTHON* variables and the user site by itself
(sys.flags.ignore_environment and no_user_site), else 0."""

import sys


def main() -> None:
    print(int(bool(sys.flags.ignore_environment and sys.flags.no_user_site)))


if __name__ == "__main__":
    main()
