"""nox sessions of isolate; they live in noxfiles/ (``nox -l`` lists them)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import nox

from noxfiles.sessions import *  # noqa: F403

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["lint", "tests"]
