# Runs INSIDE a bundle, under the bundle's own interpreter (CPython 3.8+). Not imported by
# isolate: `isolate verify` (isolate.verify.probes.isolation) reads this file and feeds it,
# with a call of probe(), as one line to `<bundle>/bin/python3 -B -i` started in the
# hostile environment of isolate.hostile_env, so that PYTHONSTARTUP *would* run. Only
# json and sys are imported: every module it loads is one the judge looks at.
"""Report what an interactive bundled interpreter sees: sys.path, prefixes, flags, where
a few (shadowed) modules come from and the file of every module loaded."""

from __future__ import annotations

import json
import sys


def probe(names: tuple[str, ...], mark: str) -> None:
    """Import ``names`` and write one line ``mark + JSON`` to standard output."""
    mods = {}
    for name in names:
        try:
            mods[name] = getattr(__import__(name), "__file__", None)
        except BaseException as exc:
            mods[name] = "import failed: %r" % (exc,)
    loaded = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
                    - {""})
    sys.stdout.write("\n" + mark + json.dumps({
        "path": sys.path, "prefix": sys.prefix, "base_prefix": sys.base_prefix,
        "exec_prefix": sys.exec_prefix, "isolated": sys.flags.isolated,
        "ignore_environment": sys.flags.ignore_environment,
        "no_user_site": sys.flags.no_user_site,
        "modules": mods, "loaded": loaded}) + "\n")
    sys.stdout.flush()
