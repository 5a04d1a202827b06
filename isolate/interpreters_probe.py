# Runs under every interpreter isolate.interpreters finds on this machine (pyenv's and
# those on PATH), from Python 2.4 on: no print function, no format(), no annotations, and
# ASCII only. Not imported by isolate: isolate.interpreters reads this file and runs it as
# `<python> -B -c <this file>`.
"""Write ``MAJOR.MINOR.MICRO IMPLEMENTATION PREFIX`` as one line to standard output."""

import sys


def main():  # type: () -> None
    impl = 'CPython'
    if 'PyPy' in sys.version:
        impl = 'PyPy'
    sys.stdout.write('%d.%d.%d %s %s\n' % (sys.version_info[0], sys.version_info[1],
                                           sys.version_info[2], impl, sys.prefix))


if __name__ == '__main__':
    main()
