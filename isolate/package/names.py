"""Package names, versions and architectures as Debian and RPM spell them.

Debian policy 5.6.1 (Source/Package): lower-case letters, digits, ``+``, ``-`` and ``.``,
at least two characters, starting with an alphanumeric. RPM (and the Fedora naming
guidelines): letters, digits, ``-``, ``.``, ``_`` and ``+``, starting with an alphanumeric.
A Python version (PEP 440) becomes an upstream version both tools order correctly:
pre-releases sort before the release with ``~`` (``1.0rc1`` -> ``1.0~rc1``).
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
RPM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DEBIAN_NAME_RULE = ("Debian package names use lower-case letters, digits, '+', '-' and '.', "
                    "have at least two characters and start with a letter or digit "
                    "(Debian policy 5.6.1)")
RPM_NAME_RULE = ("RPM package names use letters, digits, '-', '.', '_' and '+' and start "
                 "with a letter or digit")
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def name_problem(name: str, fmt: str) -> str | None:
    """Why ``name`` is not a valid package name for ``fmt`` ("deb" or "rpm"); None if it is."""
    if fmt == "deb" and not DEBIAN_NAME.match(name):
        return f"{name!r} is not a valid Debian package name: {DEBIAN_NAME_RULE}"
    if fmt == "rpm" and not RPM_NAME.match(name):
        return f"{name!r} is not a valid RPM package name: {RPM_NAME_RULE}"
    return None


def upstream_version(text: str) -> str:
    """A PEP 440 version as a Debian upstream version / RPM Version (no ``-``)."""
    try:
        v = Version(text)
    except InvalidVersion:
        cleaned = re.sub(r"[^A-Za-z0-9.+~]", ".", text)
        return cleaned if cleaned[:1].isdigit() else f"0~{cleaned}"
    out = ".".join(str(p) for p in v.release)
    if v.epoch:
        out = f"{v.epoch}:{out}"
    if v.pre is not None:
        out += f"~{v.pre[0]}{v.pre[1]}"
    if v.post is not None:
        out += f"+post{v.post}"
    if v.dev is not None:
        out += f"~dev{v.dev}"
    if v.local is not None:
        out += f"+{v.local}"
    return out


def rpm_epoch_version(text: str) -> tuple[int, str]:
    """(Epoch, Version) for RPM: RPM keeps the epoch in its own tag."""
    version = upstream_version(text)
    epoch, _, rest = version.rpartition(":")
    return (int(epoch) if epoch else 0), rest
