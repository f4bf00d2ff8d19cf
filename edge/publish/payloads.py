"""Topic names and JSON payloads: the daemon's public MQTT contract (see docs/mqtt.md).

Everything published is built here, so the documentation, the JSON Schemas in
``docs/schemas/`` and the tests check one place. No image or face crop is ever part of a payload.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from edge.page_text import page_text

SCHEMA_VERSION = 1

# What state.camera says (docs/schemas/state.schema.json).
CAMERA_STATES = ("starting", "ok", "lost", "paused", "ended", "failed")
# What may close the camera (state.paused_by): the privacy switch and privacy.off_hours.
PAUSE_REASONS = ("privacy_hours", "switch")


# "Camera rotation to set": none while the faces look upright, else a camera.rotation.
ROTATION_OPTIONS = ["none", "0", "90", "180", "270"]


def closed_by_states() -> list[str]:
    """The "Camera closed by" sensor's values: ``open``, or the reasons holding, sorted and
    joined by ``+`` (as its template renders ``state.paused_by``)."""
    reasons = sorted(PAUSE_REASONS)
    held = ["+".join(c) for n in range(1, len(reasons) + 1) for c in combinations(reasons, n)]
    return ["open", *held]


@dataclass(frozen=True)
class Topics:
    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def pause(self) -> str:
        """Retained ``ON``/``OFF``: whether analysis is paused (the privacy switch)."""
        return f"{self.base}/pause"

    @property
    def pause_set(self) -> str:
        """Command topic: ``ON`` pauses analysis, ``OFF`` resumes it."""
        return f"{self.base}/pause/set"

    @property
    def diary(self) -> str:
        """Retained: today's minutes per emotion (``edge.diary``)."""
        return f"{self.base}/diary"

    @property
    def personal_set(self) -> str:
        """Command topic: ``{"record": LABEL, "seconds": S}`` or ``{"forget": true}``."""
        return f"{self.base}/personal/set"

    @property
    def suggestion_set(self) -> str:
        """Command topic: ``{"next": true}``, ``{"dismiss": true}`` or ``{"restore": true}``."""
        return f"{self.base}/suggestion/set"


def utc_timestamp(seconds: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds, the form every payload uses."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def utc_now() -> str:
    return utc_timestamp(time.time())


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def state_payload(
    *,
    device_id: str,
    emotion: str,
    confidence: float,
    faces: int,
    paused: bool,
    model_version: str,
    camera: str,
    since: str,
    paused_by: list[str] | None = None,
    scores: dict[str, float] | None = None,
    suggestion: dict[str, str] | None = None,
    personal: str = "off",
    suggested_rotation: int | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "device": device_id,
        "emotion": emotion,
        "confidence": round(float(confidence), 4),
        "scores": scores or {},
        "faces": int(faces),
        "paused": paused,
        # Why: "switch" (the privacy switch), "privacy_hours" (privacy.off_hours), or both.
        "paused_by": paused_by or [],
        "camera": camera,
        "since": since,
        # The latest idea given for the current emotion (None for none/no_face/paused), so a
        # dashboard shows "sad: call a friend" without listening for events.
        "suggestion": suggestion,
        "model_version": model_version,
        # Whether the model is fitted to the person (on), being fitted (recording), not, or
        # not for this model (not_applied).
        "personal": personal,
        # While the faces look turned (edge.orientation): the camera.rotation that would stand
        # them upright; None otherwise.
        "suggested_rotation": suggested_rotation,
        "timestamp": utc_now(),
    }


def event_payload(
    *,
    device_id: str,
    emotion: str,
    previous: str,
    confidence: float,
    model_version: str,
    suggestion: dict[str, str] | None,
    sequence: int,
) -> dict[str, Any]:
    # "event_type" makes the payload usable as-is by a Home Assistant MQTT event entity.
    return {
        "schema": SCHEMA_VERSION,
        "event_type": emotion,
        "device": device_id,
        "emotion": emotion,
        "previous": previous,
        "confidence": round(float(confidence), 4),
        "suggestion": suggestion,
        "sequence": sequence,
        "model_version": model_version,
        "timestamp": utc_now(),
    }


def discovery_messages(
    *,
    topics: Topics,
    discovery_prefix: str,
    emotions: list[str],
    model_version: str,
    software_version: str,
    stats_interval_seconds: float = 30.0,
    configuration_url: str | None = None,
    fit_labels: list[str] | None = None,
    diary: bool = False,
    language: str = "en",
    suggestable: list[str] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: one device with emotion, confidence, the current
    suggestion, a suggestion event per emotion change, buttons for another suggestion, "not
    for me" and bringing dismissed ones back, the pause switch, and diagnostic sensors
    (camera, what closed it, analysis rate, events waiting for the broker). With
    ``fit_labels`` (a personalization file is configured): a button per label that records the
    person in view for it, a button that forgets, and the fit's status. With ``diary``:
    today's minutes per emotion and with a face in view (the mood diary).

    A button that cannot act now is unavailable in Home Assistant, as the live page greys it
    out: "another suggestion" unless an emotion of ``suggestable`` (default: ``emotions``) is
    reported, "not for me" unless a suggestion is shown, the fit's recording buttons while the
    camera is closed or a recording runs."""
    node = f"yuzug_{topics.device_id}".replace("-", "_")
    device = {
        "identifiers": [node],
        "name": f"YUZUG {topics.device_id}",
        "manufacturer": "YUZUG",
        "model": f"emotion camera ({model_version})",
        "sw_version": software_version,
    }
    if configuration_url:  # the device page's "Visit" link: the live view
        device["configuration_url"] = configuration_url
    common = {
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    states = [*emotions, "none", "no_face", "paused"]
    asked = json.dumps(emotions if suggestable is None else suggestable)
    suggestion_buttons = _buttons(
        discovery_prefix,
        node,
        common,
        topics.suggestion_set,
        SUGGESTION_BUTTONS,
        when_state={
            "suggestion_next": f"value_json.emotion in {asked}",
            "suggestion_dismiss": "value_json.suggestion",
        },
        state_topic=topics.state,
    )
    messages = (
        _core_entities(topics, discovery_prefix, node, common, states, stats_interval_seconds)
        + suggestion_buttons
        + (_fit_entities(topics, discovery_prefix, node, common, fit_labels) if fit_labels else [])
        + (_diary_entities(topics, discovery_prefix, node, common, emotions) if diary else [])
    )
    with_labels = label_entity_names(language, emotions, fit_labels or [])
    return [
        (
            topic,
            {
                **config,
                "name": with_labels.get(config["name"]) or _say(language, config["name"]),
                # What Home Assistant (2025.10+) names the entity: the id it makes of the
                # English name, in every language, so that dashboards and automations
                # written for one device read the same on all.
                "default_entity_id": f"{topic.split('/')[-4]}.{entity_slug(node, config['name'])}",
            },
        )
        for topic, config in messages
    ]


# Home Assistant's entity names beside English, by the English name or its template; the labels
# in them are named as on the live page (edge.page_text).
ENTITY_NAMES: dict[str, dict[str, str]] = {
    "tr": {
        "Emotion": "Duygu",
        "Emotion confidence": "Duygu güveni",
        "Activity suggestion": "Etkinlik önerisi",
        "Suggestion": "Öneri",
        "Camera": "Kamera",
        "Camera closed by": "Kamerayı kapatan",
        "Camera rotation to set": "Ayarlanacak kamera döndürmesi",
        "Analysis rate": "Analiz hızı",
        "Events waiting": "Bekleyen olaylar",
        "Pause analysis": "Analizi duraklat",
        "Another suggestion": "Başka öneri",
        "Not for me": "Bana göre değil",
        "Bring back dismissed suggestions": "Reddedilen önerileri geri getir",
        "Face in view today": "Bugün yüz görülen süre",
        "Fit to me": "Bana uyarla",
        "Forget the fit": "Uyarlamayı unut",
        "Fit to me: {face}": "Bana uyarla: {face}",
        "{label} face": "{label} yüz",
        "{label} today": "Bugün {label}",
    }
}


def _say(language: str, english: str, **fields: str) -> str:
    text = english if language == "en" else ENTITY_NAMES[language].get(english, english)
    return text.format(**fields) if fields else text


def _label_name(language: str, label: str) -> str:
    return label if language == "en" else page_text(language)["labels"].get(label, label)


def fit_button_name(language: str, label: str) -> str:
    """ "Fit to me: relaxed face", "Fit to me: happy face", in ``language``; the relaxed face
    is named as on the live page's buttons."""
    face = page_text(language)["fit_faces"].get(label) or _say(
        language, "{label} face", label=_label_name(language, label)
    )
    return _say(language, "Fit to me: {face}", face=face)


def today_name(language: str, label: str) -> str:
    """The diary sensor's name for ``label``: "Happy today"."""
    name = _label_name(language, label)
    return _say(language, "{label} today", label=name.capitalize() if language == "en" else name)


def label_entity_names(language: str, emotions: list[str], fit_labels: list[str]) -> dict[str, str]:
    """The names with a label in them, in ``language``, by their English names."""
    names = {today_name("en", e): today_name(language, e) for e in emotions}
    names.update({fit_button_name("en", f): fit_button_name(language, f) for f in fit_labels})
    return names


# Letters NFKD does not take apart, spelled as unidecode (Home Assistant's slugify) spells them.
UNDECOMPOSED = str.maketrans(
    {"ı": "i", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "ł": "l", "đ": "d"}
)


def entity_slug(node: str, english_name: str) -> str:
    """The object id Home Assistant makes of a device's entity name: "YUZUG kitchen" + "Not
    for me" -> ``yuzug_kitchen_not_for_me``; accents folded as its slugify does (a label
    "Çok mutlu" -> ``cok_mutlu``)."""
    text = f"{node} {english_name}".translate(UNDECOMPOSED)
    folded = unicodedata.normalize("NFKD", text)
    ascii_only = folded.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", ascii_only).strip("_")


def _diary_entities(
    topics: Topics, discovery_prefix: str, node: str, common: dict[str, Any], emotions: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Today's minutes per emotion and in view, from the diary topic: each starts again at
    local midnight, which a ``total_increasing`` sensor's statistics take as a new cycle."""
    sensors = [
        (f"{slug(e)}_today", today_name("en", e), f"value_json.seconds[{json.dumps(e)}]")
        for e in emotions
    ]
    sensors.append(("seen_today", "Face in view today", "value_json.seen_seconds"))
    return [
        (
            f"{discovery_prefix}/sensor/{node}/{key}/config",
            {
                **common,
                "name": name,
                "unique_id": f"{node}_{key}",
                "device_class": "duration",
                "unit_of_measurement": "min",
                "state_class": "total_increasing",
                "icon": "mdi:calendar-heart",
                "state_topic": topics.diary,
                "value_template": f"{{{{ (({seconds} | default(0)) / 60) | round(1) }}}}",
            },
        )
        for key, name, seconds in sensors
    ]


# A person's say on the suggestions (key, name, icon, command, entity category or None).
SUGGESTION_BUTTONS = (
    (
        "suggestion_next",
        "Another suggestion",
        "mdi:lightbulb-question-outline",
        {"next": True},
        None,
    ),
    ("suggestion_dismiss", "Not for me", "mdi:lightbulb-off-outline", {"dismiss": True}, None),
    (
        "suggestion_restore",
        "Bring back dismissed suggestions",
        "mdi:restore",
        {"restore": True},
        "config",
    ),
)


def _buttons(
    discovery_prefix: str,
    node: str,
    common: dict[str, Any],
    command_topic: str,
    buttons: Iterable[tuple[str, str, str, dict[str, Any], str | None]],
    when_state: dict[str, str] | None = None,
    state_topic: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """A Home Assistant button per entry, pressing which sends its JSON command; one with a
    ``when_state`` condition (a Jinja test on the state JSON) is available only while it
    holds."""
    return [
        (
            f"{discovery_prefix}/button/{node}/{key}/config",
            {
                **_available_when(common, state_topic, (when_state or {}).get(key)),
                "name": name,
                "unique_id": f"{node}_{key}",
                **({"entity_category": category} if category else {}),
                "icon": icon,
                "command_topic": command_topic,
                "payload_press": dumps(command),
            },
        )
        for key, name, icon, command, category in buttons
    ]


def _available_when(
    common: dict[str, Any], state_topic: str | None, condition: str | None
) -> dict[str, Any]:
    """``common``, or with ``condition``: available while the daemon is online and the
    condition holds on its retained state (Home Assistant shows the entity greyed out
    otherwise, and a press cannot send a command the daemon would refuse)."""
    if condition is None:
        return common
    assert state_topic is not None
    shared = {k: v for k, v in common.items() if k not in AVAILABILITY_KEYS}
    return {
        **shared,
        "availability": [
            {
                "topic": common["availability_topic"],
                "payload_available": common["payload_available"],
                "payload_not_available": common["payload_not_available"],
            },
            {
                "topic": state_topic,
                "value_template": f"{{{{ 'online' if {condition} else 'offline' }}}}",
            },
        ],
        "availability_mode": "all",
    }


AVAILABILITY_KEYS = ("availability_topic", "payload_available", "payload_not_available")


def _core_entities(
    topics: Topics,
    discovery_prefix: str,
    node: str,
    common: dict[str, Any],
    states: list[str],
    stats_interval_seconds: float,
) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            f"{discovery_prefix}/sensor/{node}/emotion/config",
            {
                **common,
                "name": "Emotion",
                "unique_id": f"{node}_emotion",
                "device_class": "enum",
                "options": states,
                "icon": "mdi:emoticon-outline",
                "state_topic": topics.state,
                "value_template": "{{ value_json.emotion }}",
                "json_attributes_topic": topics.state,
            },
        ),
        (
            f"{discovery_prefix}/sensor/{node}/confidence/config",
            {
                **common,
                "name": "Emotion confidence",
                "unique_id": f"{node}_confidence",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:percent",
                "state_topic": topics.state,
                "value_template": "{{ (value_json.confidence * 100) | round(0) }}",
            },
        ),
        (
            f"{discovery_prefix}/sensor/{node}/current_suggestion/config",
            {
                **common,
                "name": "Activity suggestion",
                "unique_id": f"{node}_current_suggestion",
                "icon": "mdi:lightbulb-outline",
                "state_topic": topics.state,
                # Home Assistant caps a state at 255 characters; a catalogue text may be longer.
                "value_template": "{{ (value_json.suggestion.text if value_json.suggestion "
                "else '')[:255] }}",
            },
        ),
        (
            f"{discovery_prefix}/event/{node}/suggestion/config",
            {
                **common,
                "name": "Suggestion",
                "unique_id": f"{node}_suggestion",
                "icon": "mdi:lightbulb-on-outline",
                "state_topic": topics.event,
                "event_types": states,
            },
        ),
        (
            f"{discovery_prefix}/sensor/{node}/camera/config",
            {
                **common,
                "name": "Camera",
                "unique_id": f"{node}_camera",
                "entity_category": "diagnostic",
                "device_class": "enum",
                "options": list(CAMERA_STATES),
                "icon": "mdi:camera-outline",
                "state_topic": topics.state,
                "value_template": "{{ value_json.camera }}",
            },
        ),
        (
            # Why the camera is closed: the pause switch's own state cannot say that the
            # privacy hours hold while it is OFF.
            f"{discovery_prefix}/sensor/{node}/closed_by/config",
            {
                **common,
                "name": "Camera closed by",
                "unique_id": f"{node}_closed_by",
                "entity_category": "diagnostic",
                "device_class": "enum",
                "options": closed_by_states(),
                "icon": "mdi:shield-lock-outline",
                "state_topic": topics.state,
                "value_template": "{{ (value_json.paused_by | default([]) | sort | join('+')) "
                "or 'open' }}",
            },
        ),
        (
            # A camera mounted turned reads most faces as sad; nothing else would say why.
            f"{discovery_prefix}/sensor/{node}/rotation/config",
            {
                **common,
                "name": "Camera rotation to set",
                "unique_id": f"{node}_rotation",
                "entity_category": "diagnostic",
                "device_class": "enum",
                "options": ROTATION_OPTIONS,
                "icon": "mdi:phone-rotate-landscape",
                "state_topic": topics.state,
                "value_template": "{% set turn = value_json.get('suggested_rotation') %}"
                "{{ 'none' if turn is none else turn }}",
            },
        ),
        *(
            (
                f"{discovery_prefix}/sensor/{node}/{key}/config",
                {
                    **common,
                    "name": name,
                    "unique_id": f"{node}_{key}",
                    "entity_category": "diagnostic",
                    "state_class": "measurement",
                    "icon": icon,
                    "state_topic": topics.stats,
                    "value_template": template,
                    **({"unit_of_measurement": unit} if unit else {}),
                    # Stats come every stats_interval_seconds: three missed, the value is stale.
                    "expire_after": max(1, round(3 * stats_interval_seconds)),
                },
            )
            for key, name, icon, template, unit in (
                ("fps", "Analysis rate", "mdi:speedometer", "{{ value_json.fps }}", "fps"),
                (
                    "events_waiting",
                    "Events waiting",
                    "mdi:tray-full",
                    "{{ value_json.mqtt.events_pending if value_json.mqtt else 0 }}",
                    None,
                ),
            )
        ),
        (
            f"{discovery_prefix}/switch/{node}/pause/config",
            {
                **common,
                "name": "Pause analysis",
                "unique_id": f"{node}_pause",
                "icon": "mdi:eye-off-outline",
                "state_topic": topics.pause,
                "command_topic": topics.pause_set,
                "payload_on": "ON",
                "payload_off": "OFF",
            },
        ),
    ]


def slug(label: str) -> str:
    """A label as it may stand in a discovery topic and a unique id (a bundle's labels are
    its data set's folder names: "Very happy" is one)."""
    return re.sub(r"[^a-z0-9_]", "_", label.lower())


FIT_STATES = ("off", "recording", "on", "not_applied")
RELAXED_FACES = ("none", "neutral")  # the labels the buttons call "relaxed face"


def fit_order(labels: list[str]) -> list[str]:
    """The labels as the live page and Home Assistant offer them: the relaxed face first (what
    a camera sees most, and what most often needs fitting), then the rest in label order."""
    return sorted(labels, key=lambda label: label not in RELAXED_FACES)


def _fit_entities(
    topics: Topics, discovery_prefix: str, node: str, common: dict[str, Any], labels: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Buttons to fit the model to the person in view (``edge.personalize``), and its status."""
    buttons = [
        (
            f"fit_{slug(label)}",
            fit_button_name("en", label),
            "mdi:account-check-outline",
            # Five seconds to put the phone down and face the camera, then eight recorded.
            {"record": label, "seconds": 8, "delay": 5},
            "config",
        )
        for label in fit_order(labels)
    ] + [("fit_forget", "Forget the fit", "mdi:account-remove-outline", {"forget": True}, "config")]
    # Nothing is recorded while the camera is closed, nor beside a recording that runs.
    recordable = "value_json.emotion != 'paused' and value_json.personal != 'recording'"
    return [
        *_buttons(
            discovery_prefix,
            node,
            common,
            topics.personal_set,
            buttons,
            when_state={key: recordable for key, *_ in buttons if key != "fit_forget"},
            state_topic=topics.state,
        ),
        (
            f"{discovery_prefix}/sensor/{node}/fit/config",
            {
                **common,
                "name": "Fit to me",
                "unique_id": f"{node}_fit",
                "entity_category": "diagnostic",
                "device_class": "enum",
                "options": list(FIT_STATES),
                "icon": "mdi:account-check-outline",
                "state_topic": topics.state,
                "value_template": "{{ value_json.personal | default('off') }}",
            },
        ),
    ]
