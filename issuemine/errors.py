"""The one error type users see.

Library code raises :class:`IssuemineError` for every expected failure (bad input, unreachable API,
corrupt database...). The CLI turns it into a one-line message and a non-zero exit code, so a user
never sees a traceback for something that is not a bug.
"""


class IssuemineError(Exception):
    """An expected failure with a message meant for the user."""

    exit_code = 2


class GitHubError(IssuemineError):
    """GitHub could not be reached or refused a request, after the retry policy gave up."""


class RateLimitStop(GitHubError):
    """The primary rate limit is exhausted and the caller asked not to wait."""

    def __init__(self, message: str, reset_at: float) -> None:
        super().__init__(message)
        self.reset_at = reset_at
