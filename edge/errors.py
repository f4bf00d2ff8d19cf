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


class CommandRefused(YuzugError):
    """A well-formed command from the live page or MQTT that cannot be carried out now; the
    message says why (nobody in view to suggest for, say)."""
