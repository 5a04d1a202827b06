"""nox sessions of isolate; they live in noxfiles/ (``nox -l`` lists them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))

from noxfiles.common import CONTROLLER_PYTHONS
from noxfiles.sessions import *  # noqa: F403

# The sessions' interpreters: pyenv's versions are not on PATH (only its shims, which pick
# a version by context), so append the bin directories of the controller versions; and
# never let uv download an interpreter.
_versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
_bins = [str(d / "bin") for d in sorted(_versions.glob("3.*")) if (d / "bin").is_dir()
         and ".".join(d.name.split(".")[:2]) in CONTROLLER_PYTHONS]
os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *_bins])
os.environ["UV_PYTHON_DOWNLOADS"] = "never"

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["lint", "tests"]
