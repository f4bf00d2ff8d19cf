"""The Home Assistant blueprints in docs/blueprints/ against what the daemon really publishes:
every `!input` declared and used, the emotions they offer among the discovered entities'
states for the shipped model, and the phone blueprint's templates rendered on real event
payloads (Home Assistant templates are Jinja2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from edge.bundle import load_bundle
from edge.models import default_bundle_path
from edge.publish.payloads import Topics, discovery_messages, event_payload
from edge.suggestions import load_catalogue

BLUEPRINTS = Path(__file__).resolve().parents[2] / "docs" / "blueprints"


class Input(str):
    """``!input NAME``: where a blueprint puts what the user chose."""


class BlueprintLoader(yaml.SafeLoader):
    pass


BlueprintLoader.add_constructor("!input", lambda loader, node: Input(loader.construct_scalar(node)))


def load(name: str) -> dict[str, Any]:
    return yaml.load((BLUEPRINTS / name).read_text(), Loader=BlueprintLoader)


def inputs_used(node: Any) -> set[str]:
    if isinstance(node, Input):
        return {str(node)}
    if isinstance(node, dict):
        return set().union(*map(inputs_used, node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*map(inputs_used, node)) if node else set()
    return set()


def discovered(config_name: str) -> dict[str, Any]:
    """The shipped model's discovery config of ``sensor/.../emotion``, ``event/.../suggestion``."""
    bundle = load_bundle(default_bundle_path())
    emotions = [label for label in bundle.labels if label != bundle.manifest.abstain_label]
    messages = discovery_messages(
        topics=Topics("yuzug", "kitchen"),
        discovery_prefix="homeassistant",
        emotions=emotions,
        model_version=bundle.manifest.full_name,
        software_version="test",
    )
    return next(payload for topic, payload in messages if topic.endswith(config_name))


def select_values(blueprint: dict[str, Any], name: str) -> list[str]:
    options = blueprint["blueprint"]["input"][name]["selector"]["select"]["options"]
    return [option["value"] for option in options]


@pytest.mark.parametrize("name", sorted(p.name for p in BLUEPRINTS.glob("*.yaml")))
def test_every_input_is_declared_and_used(name):
    blueprint = load(name)
    assert blueprint["blueprint"]["domain"] == "automation"
    declared = set(blueprint["blueprint"]["input"])
    body = {key: value for key, value in blueprint.items() if key != "blueprint"}
    assert inputs_used(body) == declared
    assert body["triggers"], "a blueprint without a trigger never runs"


def test_the_mood_blueprint_offers_the_emotion_sensors_states():
    blueprint = load("yuzug-mood-lasts.yaml")
    states = discovered("sensor/yuzug_kitchen/emotion/config")["options"]
    offered = select_values(blueprint, "emotion")
    assert set(offered) <= set(states), set(offered) - set(states)
    assert {"happy", "sad", "angry", "none", "no_face"} <= set(offered)
    assert blueprint["blueprint"]["input"]["emotion"]["default"] in offered
    (trigger,) = blueprint["triggers"]
    assert (trigger["trigger"], trigger["to"], trigger["for"]) == ("state", "emotion", "duration")


def test_the_phone_blueprint_sends_the_suggestion_of_a_chosen_emotion_only():
    blueprint = load("yuzug-suggestion-to-phone.yaml")
    event_types = discovered("event/yuzug_kitchen/suggestion/config")["event_types"]
    offered = select_values(blueprint, "emotions")
    assert set(offered) <= set(event_types)
    assert set(blueprint["blueprint"]["input"]["emotions"]["default"]) <= set(offered)
    (condition,) = blueprint["conditions"]
    (action,) = blueprint["actions"]
    assert (action["domain"], action["type"]) == ("mobile_app", "notify")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    decide = environment.from_string(condition["value_template"])
    message = environment.from_string(action["message"])
    idea = load_catalogue("en")["sad"][0]

    def trigger(emotion: str, suggestion: dict[str, str] | None) -> dict[str, Any]:
        # A Home Assistant MQTT event entity keeps the payload's keys as its attributes.
        payload = event_payload(
            device_id="kitchen",
            emotion=emotion,
            previous="none",
            confidence=0.8,
            model_version="m",
            suggestion=suggestion,
            sequence=1,
        )
        return {"to_state": {"attributes": payload}}

    chosen = ["sad", "angry"]
    sad = trigger("sad", idea.as_payload())
    assert decide.render(trigger=sad, emotions=chosen) == "True"
    assert message.render(trigger=sad).strip() == idea.text
    cooling_down = trigger("sad", None)  # a suggestion that is cooling down: nothing to send
    assert decide.render(trigger=cooling_down, emotions=chosen) == "False"
    happy = trigger("happy", load_catalogue("en")["happy"][0].as_payload())
    assert decide.render(trigger=happy, emotions=chosen) == "False"


def test_the_attention_blueprint_tells_of_a_lost_camera_or_an_offline_device_not_a_pause():
    blueprint = load("yuzug-needs-attention.yaml")
    camera = discovered("sensor/yuzug_kitchen/camera/config")
    (trigger,) = blueprint["triggers"]
    assert (trigger["trigger"], trigger["entity_id"], trigger["for"]) == (
        "state",
        "camera_sensor",
        "duration",
    )
    # Home Assistant's own "unavailable" is the Last Will; the rest are the sensor's states.
    assert set(trigger["to"]) - {"unavailable"} <= set(camera["options"])
    assert {"lost", "failed", "unavailable"} <= set(trigger["to"])
    assert "paused" not in trigger["to"]  # closed on purpose: the switch or privacy hours
    (action,) = blueprint["actions"]
    assert (action["domain"], action["type"]) == ("mobile_app", "notify")
    message = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(action["message"])
    # Home Assistant names the entity after its device and the discovered name.
    name = f"YUZUG kitchen {camera['name']}"

    def told(state: str) -> str:
        return message.render(trigger={"to_state": {"name": name, "state": state}}).strip()

    assert told("lost") == (
        "YUZUG kitchen: the camera is lost and being retried; check its cable or stream."
    )
    assert told("unavailable") == (
        "YUZUG kitchen is offline: no power, no network, or the daemon stopped."
    )
