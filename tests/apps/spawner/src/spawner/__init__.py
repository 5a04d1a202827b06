"""Start children of the running interpreter, as apps and their tests do."""

import json
import subprocess
import sys

__version__ = "1.0"


def child(code, *args):
    """Run ``code`` with ``sys.executable -c``; return what it prints."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed (exit code {done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def child_facts():
    """The child's prefix and whether it imports this package from the same place."""
    return json.loads(child(
        "import json, sys, spawner; "
        "print(json.dumps({'prefix': sys.prefix, 'spawner': spawner.__file__}))"))


def double(n):
    return 2 * n
