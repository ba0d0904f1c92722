"""The one error type of the q translator."""

from __future__ import annotations


class TranslationError(ValueError):
    """A q query that cannot be translated, with the 0-based character offset it points at.

    The message names the construct (``'fby' ...``, ``each-left adverb ...``) so that a user
    sees what is outside the supported subset; translation never guesses.
    """

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.message = message
        self.position = position


class MixedShapes(TranslationError):
    """Per-row values and aggregates in one expression (``price - avg price``) where the
    aggregate renders as a GROUP BY aggregate: the caller may broadcast instead
    (``aggregates.broadcast``)."""
