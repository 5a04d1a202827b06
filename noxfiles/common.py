"""What the sessions share: clean pip configuration and how to install isolate."""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent.parent
CONTROLLER_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
INDEX = os.environ.get("ISOLATE_INDEX_URL", "https://pypi.org/simple")

# The machine's pip configuration (extra indexes, a global constraint file) must not
# change what the toolkit or its tests see.
CLEAN_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": INDEX,
    "UV_DEFAULT_INDEX": INDEX,
    "UV_NO_CONFIG": "1",
}
# Machine-wide settings that must not reach pip or uv (see .ci/run, which unsets them).
for _name in ("PIP_CONSTRAINT", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "UV_CONSTRAINT",
              "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS"):
    os.environ.pop(_name, None)


def install(session: nox.Session, *extras: str) -> None:
    for k, v in CLEAN_ENV.items():
        session.env[k] = v
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)
