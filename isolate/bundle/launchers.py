"""Relocatable launchers: files that are valid sh *and* valid Python.

sh runs line 2: a no-op (``:``), then it finds the bundle from the launcher's real path
(so moving the bundle, calling through a symlink, or a path with spaces all work) and
starts the bundled interpreter in isolated mode (``-I``) on the same file. Python reads
lines 2-3 as a string and runs the rest. No absolute path, no shebang length limit, and
one helper process (``realpath``) before the interpreter starts.
"""

from __future__ import annotations


def script_launcher(python_rel: str, module: str, attr: str) -> str:
    """A console-script launcher. ``python_rel``: the interpreter, relative to the
    launcher's directory (e.g. ``../python/bin/python3.12``)."""
    call = attr.split(".")[0]
    sh = f'r=$(realpath -- "$0") && exec "${{r%/*}}/{python_rel}" -I "$0" "$@"'
    return (
        "#!/bin/sh\n"
        f"'''':; {sh}\n"
        "'''\n"
        "# Made by isolate: runs this bundle's own interpreter, isolated from the host's.\n"
        "import sys\n"
        f"from {module} import {call}\n"
        "if __name__ == \"__main__\":\n"
        f"    sys.exit({attr}())\n"
    )


def python_launcher(python_rel: str) -> str:
    """``bin/python3``: the bundled interpreter in isolated mode."""
    return (
        "#!/bin/sh\n"
        "# Made by isolate: this bundle's own interpreter, isolated from the host's.\n"
        f"r=$(realpath -- \"$0\") && exec \"${{r%/*}}/{python_rel}\" -I \"$@\"\n"
    )
