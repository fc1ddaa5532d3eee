"""Our exception types. Each carries a title and a message a user can act on."""

from __future__ import annotations


class SimulatorError(Exception):
    """Base class: ``title`` is a few words, ``str(err)`` says what is wrong and what to do."""

    title = "Error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        if title is not None:
            self.title = title

    @property
    def message(self) -> str:
        return str(self)


class ConfigurationError(SimulatorError):
    title = "Configuration problem"


class DatabaseUnavailableError(SimulatorError):
    title = "Database unreachable"


class AuthenticationError(SimulatorError):
    title = "Login failed"


class NotFoundError(SimulatorError):
    title = "Not found"


class StaleVersionError(SimulatorError):
    title = "Changed elsewhere"


class PermissionDeniedError(SimulatorError):
    title = "Not allowed"


class SpecError(SimulatorError):
    """A malformed batch spec or experiment file; the message names the offending field path."""

    title = "Invalid specification"


class LLMError(SimulatorError):
    """A model call failed in a way the user can act on (server down, bad key, unknown model)."""

    title = "Model call failed"

    def __init__(self, message: str, *, retryable: bool = False, title: str | None = None) -> None:
        super().__init__(message, title=title)
        self.retryable = retryable


class AnnotationError(SimulatorError):
    """An annotator cannot run as asked (a bad rubric, an unknown scorer, a scorer's bad output)."""

    title = "Cannot annotate"
