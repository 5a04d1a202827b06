"""The one exception hierarchy of isolate.

Every error a user can cause or meet carries a message that names the file, key or
package, and a hint that says what to do. Only the CLI turns these into output and exit
codes (see ``ExitCode``).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented exit codes of the ``isolate`` command."""

    OK = 0
    CHECK_FAILED = 1  # a check ran and found something (stale lock, verify findings)
    USAGE = 2  # bad command line or bad input (profiles, locks, bundles)
    ENVIRONMENT = 3  # the machine lacks something (interpreter, tool, network)
    INTERRUPTED = 130


class IsolateError(Exception):
    """Root of every error isolate raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details


class InputError(IsolateError):
    """A profile, lock, bundle or argument is wrong; the user must change it."""


class ProfileError(InputError):
    """A profile file is missing, unparsable or invalid."""


class DocumentError(InputError):
    """A document isolate wrote (a bundle manifest, matrix results) cannot be read back.

    The message is ``<where>: <key path>: <reason>`` (``files[1203].sha256: missing``);
    ``key`` and ``reason`` are kept apart for callers that show them differently."""

    default_hint: str | None = None

    def __init__(self, reason: str, *, key: str = "", where: str = "", hint: str | None = None,
                 details: str | None = None):
        super().__init__(": ".join([*(p for p in (where, key) if p), reason]),
                         hint=hint or self.default_hint, details=details)
        self.reason = reason
        self.key = key
        self.where = where

    def under(self, prefix: str) -> DocumentError:
        """The same error, its key path below ``prefix`` (``files[3]`` + ``sha256``)."""
        key = prefix if not self.key else (
            f"{prefix}{self.key}" if self.key.startswith("[") else f"{prefix}.{self.key}")
        return type(self)(self.reason, key=key, where=self.where, hint=self.hint,
                          details=self.details)

    def located(self, where: str) -> DocumentError:
        """The same error, naming the file (or whatever) the document came from."""
        return type(self)(self.reason, key=self.key, where=where, hint=self.hint,
                          details=self.details)


class ContractError(InputError):
    """The finished runtime breaks its runtime profile's contract: it needs more from the
    host than ``[target]`` allows, or cannot run on a required host."""


class CheckFailed(IsolateError):
    """A check ran to the end and found problems."""

    exit_code = ExitCode.CHECK_FAILED


class EnvironmentProblem(IsolateError):
    """The machine lacks an interpreter, a tool or network access."""

    exit_code = ExitCode.ENVIRONMENT


class ResolutionError(InputError):
    """The requirements cannot be resolved; details carry the resolver's diagnosis."""


class CommandFailed(EnvironmentProblem):
    """A subprocess failed; ``details`` holds the tail of its output."""

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(message, details=details, hint=hint or (
            "the command's own output is above; fix what it names and run isolate again"))
