# Runs under the CPython that a bundle will copy (a local one or an unpacked
# python-build-standalone archive), whatever its version: nothing newer than Python 3.3.
# Not imported by isolate: isolate.bundle.interpreter.describe reads this file and runs it
# as `<python> -I -B -c <this file>`.
"""Describe this CPython installation as one JSON object on standard output: its version,
prefixes, standard library, lib-dynload, libpython and what linking against it takes."""

import json
import os
import sys
import sysconfig


def main() -> None:
    v = sysconfig.get_config_vars()
    dynload = v.get("DESTSHARED") or ""
    if not os.path.isdir(dynload):
        dynload = ""
        for p in sys.path:
            if os.path.basename(p) == "lib-dynload" and os.path.isdir(p):
                dynload = p
                break
    try:
        scd = sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
    except Exception:
        scd = ""
    print(json.dumps({
        "version": "%d.%d.%d" % sys.version_info[:3],
        "implementation": sys.implementation.name,
        "executable": os.path.realpath(sys.executable),
        "prefix": sys.base_prefix,
        "exec_prefix": sys.base_exec_prefix,
        "stdlib": sysconfig.get_path("stdlib"),
        "dynload": dynload,
        "shared": bool(v.get("Py_ENABLE_SHARED")),
        "libdir": v.get("LIBDIR") or "",
        "instsoname": v.get("INSTSONAME") or "",
        "include": sysconfig.get_path("include") or "",
        "sysconfigdata": scd,
        "soabi": v.get("SOABI") or "",
        "abiflags": getattr(sys, "abiflags", ""),
        "config_prefix": v.get("prefix") or "",
        "config_h": sysconfig.get_config_h_filename(),
        "multiarch": v.get("MULTIARCH") or "",
        "libpl": v.get("LIBPL") or "",
        "static_library": v.get("LIBRARY") or "",
        "link_flags": " ".join(v.get(k) or "" for k in ("LINKFORSHARED",)),
        "link_libs": " ".join(v.get(k) or "" for k in ("LIBS", "MODLIBS", "SYSLIBS")),
    }))


if __name__ == "__main__":
    main()
