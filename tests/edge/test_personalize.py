"""Personalization: offsets fitted to one person's recorded faces, applied by the daemon."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.__main__ import main
from edge.app import EdgeApp
from edge.bundle import load_bundle
from edge.classify.emotion import EmotionClassifier
from edge.config import parse_config
from edge.errors import CommandRefused
from edge.imagefiles import decode_image
from edge.models import default_bundle_path
from edge.personalize import (
    OFFSET_LIMIT,
    NoPersonalization,
    PersonalizationError,
    PersonalRecorder,
    advice,
    applied_words,
    apply_offsets,
    fit_offsets,
    hint,
    load_personalization,
    personalize,
    recalls,
)
from edge.preprocess import preprocess_face
from edge.samples import Segment, fer_faces, scripted_frames, write_video
from tests.support import person, write_personal_file

LABELS = ["angry", "happy", "sad", "none"]


def test_a_resting_face_read_as_sad_is_fitted_back_to_none_and_smiles_stay_happy() -> None:
    rng = np.random.default_rng(0)
    recorded = {
        # This person's relaxed face: the model says sad more often than none.
        "none": person(rng, [0.05, 0.05, 0.50, 0.40]),
        "happy": person(rng, [0.03, 0.80, 0.07, 0.10]),
    }
    offsets = fit_offsets(recorded, LABELS, reference="none")
    before = recalls(recorded, LABELS, np.zeros(4))
    after = recalls(recorded, LABELS, offsets)
    assert before["none"] < 0.4 and after["none"] >= 0.95
    assert after["happy"] >= before["happy"] == 1.0
    assert offsets[LABELS.index("none")] == 0  # the reference
    assert offsets[LABELS.index("sad")] < 0
    assert np.all(np.abs(offsets) <= OFFSET_LIMIT)
    # Nothing to correct: the smallest offsets (none) explain the recordings best.
    clear = {
        "none": person(rng, [0.05, 0.05, 0.1, 0.8]),
        "sad": person(rng, [0.1, 0.05, 0.75, 0.1]),
    }
    assert np.all(fit_offsets(clear, LABELS, reference="none") == 0)
    with pytest.raises(PersonalizationError, match="no faces"):
        fit_offsets({"none": np.zeros((0, 4))}, LABELS, reference="none")


def test_the_hint_asks_for_what_the_fit_could_not_weigh() -> None:
    bundle = load_bundle(default_bundle_path())
    rng = np.random.default_rng(4)
    smiles = personalize(bundle, {"happy": person(rng, [0.1, 0.45, 0.05, 0.4])})
    assert smiles.offsets["happy"] > 0
    assert hint(smiles, "none") == (
        "record the relaxed face too: without it, raising happy also reads relaxed faces so "
        "more often"
    )
    # The same by code and labels, for the live page to say in its own language.
    assert advice(smiles, "none") == {"code": "record_relaxed", "labels": ["happy"]}
    assert applied_words(smiles.applied()) == f"on: {smiles.describe()}"
    assert smiles.describe().startswith("happy +") and smiles.applied()["offsets"] == {
        "happy": pytest.approx(smiles.offsets["happy"], abs=1e-4)
    }
    everything = personalize(
        bundle,
        {
            "none": person(rng, [0.05, 0.05, 0.1, 0.8]),
            "happy": person(rng, [0.05, 0.8, 0.05, 0.1]),
            "sad": person(rng, [0.05, 0.05, 0.8, 0.1]),
            "angry": person(rng, [0.8, 0.05, 0.05, 0.1]),
        },
    )
    assert hint(everything, "none") is None and advice(everything, "none") is None


def test_offsets_move_probabilities_in_log_space() -> None:
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 1.0, 0.0, 0.0]], np.float32)
    unchanged = apply_offsets(probabilities, np.zeros(4))
    np.testing.assert_allclose(unchanged[0], probabilities[0], atol=1e-6)
    np.testing.assert_allclose(unchanged.sum(axis=1), 1.0, atol=1e-6)
    lifted = apply_offsets(probabilities, np.array([np.log(4.0), 0, 0, 0]))
    # 0.1 * 4 = 0.4 against 0.2 + 0.3 + 0.4: the same odds ratio a bias on the logits gives.
    np.testing.assert_allclose(lifted[0], np.array([0.4, 0.2, 0.3, 0.4]) / 1.3, atol=1e-6)
    # A score the int8 output rounded to 0 is floored, so an offset can still lift it.
    assert 0 < apply_offsets(probabilities, np.array([OFFSET_LIMIT, 0, 0, 0]))[1, 0] < 0.01


def test_a_bad_or_foreign_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    bundle = load_bundle(default_bundle_path())
    with pytest.raises(NoPersonalization):
        load_personalization(tmp_path / "absent.json")
    (tmp_path / "cut.json").write_text('{"format_version": 1, "labels": [')  # a power cut
    with pytest.raises(PersonalizationError, match="cut.json: not a readable"):
        load_personalization(tmp_path / "cut.json")
    far = write_personal_file(tmp_path / "far.json", offsets={"sad": 9.0})
    with pytest.raises(PersonalizationError, match="beyond the limit"):
        load_personalization(far)
    narrow = write_personal_file(tmp_path / "narrow.json", samples={"none": [[0.5, 0.5, 0.0]] * 4})
    with pytest.raises(PersonalizationError, match="rows of 4 finite numbers"):
        load_personalization(narrow)
    future = write_personal_file(tmp_path / "future.json", format_version=2)
    with pytest.raises(PersonalizationError, match="format_version"):
        load_personalization(future)
    good = load_personalization(write_personal_file(tmp_path / "good.json"))
    assert good.offsets_for(bundle).shape == (4,)
    other = load_personalization(
        write_personal_file(
            tmp_path / "other.json", model={"name": "yuzug-old 1", "sha256": "0" * 64}
        )
    )
    with pytest.raises(PersonalizationError, match="fitted for model yuzug-old 1"):
        other.offsets_for(bundle)


def test_the_daemon_applies_offsets_for_its_model_and_runs_on_without_a_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    personal = tmp_path / "personal.json"
    config = parse_config(
        {"classifier": {"personal_file": str(personal)}, "mqtt": {"enabled": False}}
    )
    app = EdgeApp(config)
    app.init_model()
    assert app.classifier is not None and app.classifier.offsets is None
    assert app.personal == "off"
    face = np.full((1, 48, 48, 1), 128, np.uint8)
    own = app.classifier.probabilities(face)[0]

    write_personal_file(personal, offsets={"angry": 0.0, "happy": 0.0, "sad": -1.5, "none": 0.0})
    assert app.reload_model()  # SIGHUP's path: the file is read again
    assert app.classifier.offsets is not None
    assert app.personal.startswith("on: sad -1.50")
    assert app.health()["model"]["personal"] == app.personal
    np.testing.assert_allclose(
        app.classifier.probabilities(face)[0],
        apply_offsets(own[np.newaxis], np.array([0, 0, -1.5, 0]))[0],
        atol=1e-6,
    )

    app.paused.set()  # the privacy switch: nothing to record, said at once
    with pytest.raises(CommandRefused, match="privacy switch") as refused:
        app.personal_command({"record": "none"})
    assert refused.value.code == "paused"  # for the live page to say in its language
    app.paused.clear()
    with pytest.raises(ValueError, match="delay must be a number"):
        app.personal_command({"record": "none", "delay": "soon"})
    app.personal_command({"record": "none", "seconds": 2})
    assert app.recorder.recording == "none"
    with pytest.raises(CommandRefused, match="already recording none") as refused:
        app.personal_command({"record": "sad"})
    assert refused.value.code == "busy"
    # The camera closes mid-recording: no frames come, so the recording ends now, said so,
    # instead of waiting half done and finishing on whoever is in view when it opens again.
    app._set_pause("switch", True)
    assert app.recorder.recording is None and app.personal_status == "on"
    assert app.recorder.last is not None and app.recorder.last["code"] == "paused"
    app._set_pause("switch", False)

    caplog.set_level(logging.WARNING)
    write_personal_file(personal, model={"name": "yuzug-old 1", "sha256": "0" * 64})
    assert app.reload_model()
    assert app.classifier.offsets is None
    assert app.personal.startswith("not applied: fitted for model yuzug-old 1")
    assert app.personal_fit["code"] == "other_model"  # the page's words for a pushed model
    personal.write_text("{")
    assert app.reload_model()
    assert app.classifier.offsets is None and "not a readable" in app.personal
    assert app.personal_fit["code"] == "unreadable"
    assert sum("personal offsets not applied" in r.message for r in caplog.records) == 2


def held_out(fer_zip: Path, label: str, count: int) -> np.ndarray:
    """FER2013 test crops of ``label``: faces of other people than the recordings'."""
    with zipfile.ZipFile(fer_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith(f"test/{label}/"))[:count]
        images = [decode_image(archive.read(name)) for name in names]
    spec = load_bundle(default_bundle_path()).preprocess
    return np.stack([preprocess_face(image, spec) for image in images if image is not None])


def test_personalize_records_from_a_camera_fits_and_keeps_earlier_recordings(
    fer_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command on real parts: a video through OpenCV, BlazeFace, the shipped model.

    The "person" is FER2013's training faces; whether the fit carries to faces it never saw
    is measured on the test split's neutral and happy faces.
    """
    faces = fer_faces(fer_zip, ["neutral", "happy"], 30, split="train", seed=1)
    for label in faces:
        script = [Segment(label, 0.3)] * 30
        write_video(
            scripted_frames({label: faces[label]}, script, 10.0), tmp_path / f"{label}.avi", 10.0
        )
    config = tmp_path / "edge.toml"
    config.write_text("[camera]\nrealtime = false\n")
    out = tmp_path / "personal.json"
    common = ["personalize", "--config", str(config), "--out", str(out), "--countdown", "0"]

    assert main([*common, "--source", str(tmp_path / "neutral.avi"), "--labels", "none"]) == 0
    printed = capsys.readouterr().out
    first = load_personalization(out)
    assert len(first.samples["none"]) >= 80  # 90 frames, a face in (nearly) all
    moved = [label for label, value in first.offsets.items() if value]
    assert moved and f"not recorded: {', '.join(moved)}; its offset only keeps" in printed

    bundle = load_bundle(default_bundle_path())
    classifier = EmotionClassifier.from_bundle(bundle)
    neutral, happy = held_out(fer_zip, "neutral", 300), held_out(fer_zip, "happy", 300)

    def rates() -> tuple[float, float]:
        calls = np.argmax(classifier.probabilities(neutral), axis=1)
        smiles = np.argmax(classifier.probabilities(happy), axis=1)
        return float(np.mean(calls != LABELS.index("none"))), float(np.mean(smiles == 1))

    own_false, own_happy = rates()
    classifier.offsets = first.offsets_for(bundle)
    fitted_false, fitted_happy = rates()
    assert fitted_false < own_false - 0.05, (own_false, fitted_false)

    # A second session adds smiles; the relaxed faces recorded before stay in the fit.
    assert main([*common, "--source", str(tmp_path / "happy.avi"), "--labels", "happy"]) == 0
    printed = capsys.readouterr().out
    second = load_personalization(out)
    assert set(second.samples) == {"none", "happy"}
    np.testing.assert_array_equal(second.samples["none"], first.samples["none"])
    assert "happy " in printed and "none " in printed  # the table has both rows
    classifier.offsets = second.offsets_for(bundle)
    both_false, both_happy = rates()
    assert both_false < own_false and both_happy >= fitted_happy - 0.01

    # `classify --personal` scores pictures as the daemon would with the file.
    with zipfile.ZipFile(fer_zip) as archive:
        name = sorted(n for n in archive.namelist() if n.startswith("test/neutral/"))[0]
        (tmp_path / "face.jpg").write_bytes(archive.read(name))
    records = []
    for extra in ([], ["--personal", str(out)]):
        assert main(["classify", "--no-detect", *extra, str(tmp_path / "face.jpg")]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        records.append(json.loads(line)["faces"][0]["scores"])
    own = np.array([[records[0][label] for label in LABELS]])
    np.testing.assert_allclose(
        [records[1][label] for label in LABELS],
        apply_offsets(own, second.offsets_for(bundle))[0],
        atol=2e-3,
    )
    assert records[0] != records[1]

    # A label the model does not have, and a damaged file, are refused with the reason.
    assert main([*common, "--source", str(tmp_path / "happy.avi"), "--labels", "surprise"]) == 2
    out.write_text("{")
    assert main([*common, "--source", str(tmp_path / "happy.avi"), "--labels", "happy"]) == 2
    assert out.read_text() == "{"  # left for the user to look at, not overwritten
    assert "--reset starts a new file" in capsys.readouterr().err
    assert (
        main([*common, "--source", str(tmp_path / "happy.avi"), "--labels", "happy", "--reset"])
        == 0
    )
    assert set(load_personalization(out).samples) == {"happy"}


def test_the_recorder_ends_on_time_with_or_without_faces_and_replaces_a_damaged_file(
    tmp_path: Path,
) -> None:
    bundle = load_bundle(default_bundle_path())
    path = tmp_path / "personal.json"
    recorder = PersonalRecorder(path)
    with pytest.raises(PersonalizationError, match="personal_file"):
        PersonalRecorder(None).start("none", 5, bundle.labels, now=0)
    with pytest.raises(PersonalizationError, match="from 1 to 60"):
        recorder.start("none", 600, bundle.labels, now=0)

    recorder.start("none", 5, bundle.labels, now=0)  # nobody in front of the camera
    assert recorder.observe(4.9, None, bundle) is None and recorder.status(4.9)["recording"]
    assert recorder.observe(5.0, None, bundle) is None
    assert recorder.last == {
        "label": "none",
        "faces": 0,
        "error": "no face was seen",
        "code": "no_face",
    }
    assert not path.exists()

    recorder.start("sad", 5, bundle.labels, now=10)  # then a new model comes mid-recording
    recorder.observe(11, np.array([0.1, 0.1, 0.7, 0.1], np.float32), bundle)
    recorder.cancel("the model changed during the recording", "model_changed")
    assert recorder.last is not None and recorder.last["faces"] == 1
    assert recorder.last["code"] == "model_changed"
    assert recorder.observe(16, None, bundle) is None and not path.exists()

    path.write_text("{")  # a power cut during an earlier save
    # Pressed on a phone: 2 s to face the camera first; what it saw then is not kept.
    recorder.start("none", 5, bundle.labels, now=18, delay=2)
    assert recorder.status(18)["recording"]["starts_in"] == 2
    recorder.observe(19, np.array([0.1, 0.8, 0.05, 0.05], np.float32), bundle)  # still a smile
    rng = np.random.default_rng(3)
    for i, row in enumerate(person(rng, [0.05, 0.05, 0.5, 0.4], 30)):
        assert recorder.observe(20 + i * 0.1, row, bundle) is None
    personal = recorder.observe(25, None, bundle)
    assert personal is not None and len(personal.samples["none"]) == 30
    assert personal is not None and personal.offsets["sad"] < 0
    assert load_personalization(path).offsets == personal.offsets
    assert (
        recorder.last is not None
        and recorder.last["after"]["none"] > recorder.last["before"]["none"]
    )
    recorder.forget()
    assert not path.exists() and recorder.last == {"forgotten": True}


def test_the_personalization_benchmark_reports_each_recording_choice(
    fer_zip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "personalize.json"
    subprocess.run(
        [sys.executable, "bench/personalize.py", "--data", str(fer_zip), "--faces", "4"]
        + ["--json", str(out)],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=600,
    )
    rows = json.loads(out.read_text())["rows"]
    assert [row["recorded"] for row in rows] == [
        "nothing",
        "none",
        "none + happy",
        "none + sad",
        "none + angry + happy + sad",
    ]
    assert all(count > 0 for row in rows[1:] for count in row["faces_recorded"].values())
    assert rows[0]["neutral_named_an_emotion"] > 0 and set(rows[-1]["offsets"]) == set(LABELS)


def test_ctrl_c_during_a_recording_saves_nothing_and_prints_no_traceback(
    fer_zip: Path, tmp_path: Path
) -> None:
    faces = fer_faces(fer_zip, ["neutral"], 3, split="train", seed=1)
    clip = tmp_path / "neutral.avi"
    write_video(scripted_frames(faces, [Segment("neutral", 3.0)] * 3, 10.0), clip, 10.0)
    out = tmp_path / "personal.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", "personalize", "--source", str(clip), "--out", str(out)]
        + ["--labels", "none", "--countdown", "0", "--seconds", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = process.stdout
    assert stdout is not None and stdout.readline().startswith("none: look at the camera")
    time.sleep(1.5)  # recording (the clip plays in real time)
    process.send_signal(signal.SIGINT)
    printed, errors = process.communicate(timeout=30)
    assert process.returncode == 130 and "stopped: nothing saved" in printed
    assert "Traceback" not in errors and not out.exists()
