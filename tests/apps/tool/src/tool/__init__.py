import sys

import alpha


def main():
    print("tool", alpha.__version__, sys.prefix)
    return 0
