"""``isolate verify``: prove a bundle is intact, relocatable, closed, isolated and importable.

``verify(path, host=..., runner=..., manifest_sha256=None)`` returns a ``VerifyReport``
holding every finding of every check at once; it raises ``InputError`` only when ``path``
is not a bundle at all. See ``isolate.verify.core`` for the flow, ``checks`` and
``probes`` for what each check covers, ``manifest_hash`` for the manifest's own hash, and
``report`` for the JSON schema (``isolate.verify/1``).
"""

from __future__ import annotations

from isolate.verify.core import verify
from isolate.verify.report import ERROR, NOTE, SCHEMA, CheckRun, Finding, VerifyReport

__all__ = ["ERROR", "NOTE", "SCHEMA", "CheckRun", "Finding", "VerifyReport", "verify"]
