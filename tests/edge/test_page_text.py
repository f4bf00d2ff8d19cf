"""The live page's words: every language has every text the page uses, with the same fields,
names for everything the daemon reports, and the page comes in the language the config asks for.
(Chromium renders the Turkish page in ``test_reliability``.)"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, get_args

import pytest

from edge.app import EdgeApp
from edge.config import Language, parse_config
from edge.errors import REASON_CODES, CommandRefused, ConfigError
from edge.http import PAGE, SCRIPT, HTTPService
from edge.models import default_bundle_path
from edge.page_text import PAGE_TEXT
from edge.personalize import ADVICE_CODES, NOT_APPLIED_CODES
from edge.publish.payloads import CAMERA_STATES
from edge.tracking import NO_FACE

ROOT = Path(__file__).resolve().parents[2]
# Maps from a label or state to its name: a language names what it needs to (English shows
# most labels as they are), so their keys may differ between languages.
NAME_MAPS = ("labels", "fit_faces", "camera")


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def flat(words: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every template by its dotted key, the name maps left out."""
    out: dict[str, str] = {}
    for key, value in words.items():
        if prefix == "" and key in NAME_MAPS:
            continue
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_the_config_offers_exactly_the_languages_the_page_speaks():
    assert set(get_args(Language)) == set(PAGE_TEXT)


@pytest.mark.parametrize("language", sorted(set(PAGE_TEXT) - {"en"}))
def test_each_language_has_every_text_with_the_same_fields(language):
    english, other = flat(PAGE_TEXT["en"]), flat(PAGE_TEXT[language])
    assert set(other) == set(english)
    for key, template in english.items():
        assert fields(other[key]) == fields(template), key
        assert other[key].strip(), key


def test_the_page_and_its_script_use_only_texts_every_language_has():
    used_by_page = set(re.findall(r"\{t\[(\w+)\]\}", PAGE))
    used_by_script = set(re.findall(r"\bT\.(\w+)", SCRIPT))
    assert used_by_page and used_by_script  # the patterns still find the page's usage
    for language, words in PAGE_TEXT.items():
        assert used_by_page <= {k for k, v in words.items() if isinstance(v, str)}, language
        assert used_by_script <= set(words), language
    # The advice a fit gives, why a button did nothing and why a fit is not applied are said
    # by code: the page needs a text for each code.
    assert set(PAGE_TEXT["en"]["hints"]) == set(ADVICE_CODES)
    assert set(PAGE_TEXT["en"]["why"]) == set(REASON_CODES)
    assert set(PAGE_TEXT["en"]["applied"]["not_applied"]) == set(NOT_APPLIED_CODES)
    # Unused texts are dead weight that nobody would notice going stale.
    assert used_by_page | used_by_script == set(PAGE_TEXT["en"])


def test_a_refusal_the_page_has_no_words_for_cannot_be_raised():
    assert CommandRefused("the camera is closed", "paused").code == "paused"
    with pytest.raises(ValueError, match="unknown refusal code 'later'"):
        CommandRefused("not now", "later")


def test_turkish_names_every_emotion_state_and_camera_status_the_daemon_reports():
    words = PAGE_TEXT["tr"]
    model_labels = (default_bundle_path() / "labels.txt").read_text().split()
    fer_labels = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for label in [*model_labels, *fer_labels, NO_FACE, "paused"]:
        assert words["labels"].get(label), label
    # The camera's states as published, and those the capture thread sets (read from its
    # source, so that a new one is not missed).
    statuses = set(re.findall(r'_set_status\("(\w+)"\)', (ROOT / "edge/pipeline.py").read_text()))
    assert {"ok", "lost", "failed", "paused"} <= statuses <= set(CAMERA_STATES)
    assert set(CAMERA_STATES) <= set(words["camera"])


def page_of(settings: dict[str, dict[str, Any]]) -> str:
    """The page the HTTP service serves with these config sections (and the live view on)."""
    http = {"enabled": True, "port": 0, **settings.get("http", {})}
    config = parse_config({"mqtt": {"enabled": False}, **settings, "http": http})
    service = HTTPService(EdgeApp(config), config.http)
    try:
        return service.page("?token=a%26b").decode()
    finally:
        service.server.server_close()


@pytest.mark.parametrize(
    ("settings", "language"),
    [
        ({}, "en"),
        ({"suggestions": {"language": "tr"}}, "tr"),  # the page follows the suggestions
        ({"suggestions": {"language": "tr"}, "http": {"language": "en"}}, "en"),
        ({"http": {"language": "tr"}}, "tr"),
    ],
)
def test_the_page_comes_in_the_configured_language(settings, language):
    page = page_of(settings)
    assert f'<html lang="{language}">' in page and f'const LANG = "{language}"' in page
    words = PAGE_TEXT[language]
    assert f"<title>{words['title']}: yuzug</title>" in page
    assert f'<div class="muted">{words["suggestion"]}</div>' in page
    assert f'src="stream.mjpg?token=a%26b" alt="{words["video_alt"]}"' in page
    other = PAGE_TEXT["tr" if language == "en" else "en"]
    assert other["diary_title"] not in page


def test_an_unknown_page_language_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"http\.language: Input should be 'en' or 'tr'"):
        parse_config({"http": {"language": "de"}})
