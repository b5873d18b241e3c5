"""The project's exception tree. Front doors map these to HTTP codes or CLI exit codes."""

from __future__ import annotations


class MLPlatError(Exception):
    """Base class of every error the library raises on purpose."""


class InvalidSpecError(MLPlatError, ValueError):
    """Input that does not describe a valid request: a bad notebook, parameter, option or name."""


class NotFoundError(MLPlatError, LookupError):
    """A named run, step, artifact or file does not exist (for this owner)."""


class ConflictError(MLPlatError):
    """The request contradicts the current state (e.g. resuming a run that is still running)."""


class StepFailedError(MLPlatError):
    """A pipeline step failed; carries the step name and, when known, the failing cell."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class SerializationError(MLPlatError):
    """A step output could not be saved or loaded."""


class UnsafeArtifactError(MLPlatError):
    """Loading an artifact would run code from a source the loading user does not trust."""


class SignatureError(InvalidSpecError):
    """Input that does not match a model's signature (names, dtypes, shapes or columns)."""


class NotBlessedError(ConflictError):
    """A model version that its validation policy did not bless was asked to be deployed."""
