"""The small exception hierarchy every YUZUG program reports through."""

from __future__ import annotations


class YuzugError(Exception):
    """Base class: an error a user can act on, printed without a traceback."""


class ConfigError(YuzugError):
    """A configuration value is missing or invalid; the message names the key."""


class BundleError(YuzugError):
    """A model bundle is missing, tampered with, or does not match its manifest."""


class RuntimeUnavailableError(YuzugError):
    """Neither LiteRT (ai-edge-litert) nor tflite-runtime can be imported."""


# Why a command from the live page or MQTT was refused, or a recording for the personal fit
# was not kept: each has a text in every language of the live page (edge/page_text.py "why").
REASON_CODES = (
    "paused",  # the camera is closed (privacy switch or hours)
    "busy",  # a recording already runs
    "no_face",  # nobody was in view for the whole recording
    "model_changed",  # a new model arrived during the recording
    "nothing_to_suggest",  # the emotion reported now has no suggestions (nobody in view, say)
    "no_other_suggestion",  # every other one is dismissed or does not suit this hour
    "nothing_shown",  # "not for me" with no suggestion shown
    "unknown_suggestion",  # "not for me" naming an id the catalogue does not have
)


class CommandRefused(YuzugError):
    """A well-formed command from the live page or MQTT that cannot be carried out now; the
    message says why (nobody in view to suggest for, say) in the log's English, and ``code``
    names the case, so that the live page can say it in its own language
    (``edge.page_text``'s ``why``)."""

    def __init__(self, message: str, code: str) -> None:
        if code not in REASON_CODES:
            raise ValueError(f"unknown refusal code {code!r}")  # the page would have no words
        super().__init__(message)
        self.code = code
