"""Label audit: folds, exclusion lists, the flagging rule and the CLI on real bundles and runs."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.classify.emotion import EmotionClassifier
from edge.preprocess import PreprocessSpec
from tests.support import yuzug_train
from tests.trainer.conftest import SHIPPED_CLASSES
from trainer.audit import FaceScores, find_label_issues, summarise
from trainer.data import PreparedData, prepare, read_exclusion_list

SPEC = PreprocessSpec(size=32)
CLASSES = ["angry", "happy", "sad"]


def keys(data: PreparedData, split: str) -> set[str]:
    return set(data.keys[split].tolist())


def train_like_the_shipped_model(data: Path, run: Path, *prepare_args: str) -> Path:
    """prepare (angry/happy/sad + none from neutral, plus ``prepare_args``), then one tiny epoch."""
    for step in (
        ("prepare", str(data), *SHIPPED_CLASSES, *prepare_args),
        ("fit", "--epochs", "1"),
    ):
        result = yuzug_train(*step, "--preset", "tiny", "--run", str(run))
        assert result.returncode == 0, result.stderr[-2000:]
    return run


def test_folds_hold_out_every_train_face_once_and_leave_other_splits_alone(small_fer_dir: Path):
    full, _ = prepare(small_fer_dir, SPEC, CLASSES)
    held: list[set[str]] = []
    for index in range(3):
        folded, report = prepare(small_fer_dir, SPEC, CLASSES, fold=(index, 3))
        held.append(keys(folded, "heldout"))
        assert keys(folded, "train") | held[-1] == keys(full, "train")
        assert not keys(folded, "train") & held[-1]
        assert keys(folded, "val") == keys(full, "val") and keys(folded, "test") == keys(
            full, "test"
        )
        assert report.fold == {"index": index, "count": 3, "heldout": len(held[-1])}
        # Stratified: each fold holds about a third of every class.
        for label in range(len(CLASSES)):
            share = (folded.y["heldout"] == label).sum() / (full.y["train"] == label).sum()
            assert abs(share - 1 / 3) < 0.05
        # Pixels and labels travel with their keys.
        row = {key: i for i, key in enumerate(full.keys["train"].tolist())}
        first = folded.keys["heldout"][0]
        assert np.array_equal(folded.x["heldout"][0], full.x["train"][row[first]])
    assert sum(len(fold) for fold in held) == len(keys(full, "train"))
    with pytest.raises(ValueError, match="fold"):
        prepare(small_fer_dir, SPEC, CLASSES, fold=(3, 3))


def test_exclusion_list_drops_listed_faces_from_train_only(small_fer_dir: Path, tmp_path: Path):
    full, _ = prepare(small_fer_dir, SPEC, CLASSES)
    train_keys = sorted(keys(full, "train"))[:5]
    val_key = full.keys["val"][0]
    listing = tmp_path / "exclude.txt"
    listing.write_text(
        "# from an audit\n\n" + "\n".join([*train_keys, str(val_key), "train/sad/nowhere.jpg"])
    )
    listed = read_exclusion_list(listing)
    assert len(listed) == 7 and not any(key.startswith("#") for key in listed)

    cleaned, report = prepare(small_fer_dir, SPEC, CLASSES, exclude=listed)
    assert keys(cleaned, "train") == keys(full, "train") - set(train_keys)
    assert keys(cleaned, "val") == keys(full, "val")  # validation keeps its (noisy) labels
    assert report.excluded is not None
    assert (report.excluded["dropped_from_train"], report.excluded["in_other_splits"]) == (5, 1)
    assert report.excluded["not_found"] == 1
    assert sum(report.excluded["by_label"].values()) == 5
    assert cleaned.fingerprint != full.fingerprint
    with pytest.raises(ValueError, match="cannot read"):
        read_exclusion_list(tmp_path / "missing.txt")


def test_flagging_averages_models_and_needs_a_firm_other_label():
    scores = FaceScores(labels=["angry", "happy", "sad"])
    x = np.zeros((4, 8, 8, 1), np.uint8)
    y = np.array([0, 1, 2, 2])
    face_keys = np.array(["a", "b", "c", "d"])
    # Model 1 and 2 agree that "a" is happy; "b" is right; "c" is split; "d" is firmly angry.
    scores.add(
        "train",
        face_keys,
        y,
        x,
        np.array([[0.1, 0.9, 0], [0, 1, 0], [0, 0.9, 0.1], [0.95, 0, 0.05]]),
    )
    scores.add(
        "train",
        face_keys,
        y,
        x,
        np.array([[0.1, 0.8, 0.1], [0, 1, 0], [0, 0.4, 0.6], [0.85, 0, 0.15]]),
    )
    issues = find_label_issues(scores, min_probability=0.8)
    assert [(issue["key"], issue["predicted"]) for issue in issues] == [
        ("d", "angry"),
        ("a", "happy"),
    ]
    assert issues[0]["p_predicted"] == pytest.approx(0.9) and issues[0]["models"] == 2
    assert issues[1]["p_label"] == pytest.approx(0.1)
    summary = summarise(scores, issues, "in-sample", 0.8)
    assert summary["splits"]["train"]["flagged"] == 2 and summary["splits"]["train"]["scored"] == 4
    assert summary["splits"]["train"]["label>predicted"] == {"sad>angry": 1, "angry>happy": 1}
    # Lower the bar and the split face "c" (0.65 happy) is flagged too.
    assert len(find_label_issues(scores, min_probability=0.6)) == 3


@pytest.mark.slow
def test_audit_of_a_bundle_flags_what_its_probabilities_say(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path
):
    data = PreparedData.load(tiny_run / "data.npz")
    probs = EmotionClassifier.from_bundle(load_bundle(tiny_run / "bundle")).probabilities(
        data.x["train"]
    )
    predicted = probs.argmax(1)
    wrong = predicted != data.y["train"]
    # A threshold that the tiny model's wrong answers straddle, so the list is a real choice.
    threshold = f"{np.quantile(probs.max(1)[wrong], 0.5):.6f}"
    firm = wrong & (probs.max(1) >= float(threshold))
    expected = set(data.keys["train"][firm].tolist())
    assert expected, "the tiny model gets some training faces wrong"

    out = tmp_path / "audit"
    result = yuzug_train(
        "audit",
        str(small_fer_dir),
        "--model",
        str(tiny_run / "bundle"),
        "--out",
        str(out),
        "--min-probability",
        threshold,
        "--draw",
        str(tmp_path / "faces.png"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_exclusion_list(out / "exclude.txt") == expected
    summary = json.loads((out / "audit.json").read_text())
    assert summary["mode"] == "in-sample"
    assert summary["splits"]["train"]["scored"] == len(data.y["train"])
    assert summary["splits"]["train"]["flagged"] == len(expected)
    with open(out / "label-issues.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["split"] for row in rows} <= {"train", "val"}
    assert (tmp_path / "faces.png").stat().st_size > 0

    # Other data (half the images) would split differently: refused by the fingerprint.
    wrong = tmp_path / "fewer"
    for member in sorted(small_fer_dir.rglob("*.jpg"))[::2]:
        target = wrong / member.relative_to(small_fer_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(member.read_bytes())
    refused = yuzug_train(
        "audit", str(wrong), "--model", str(tiny_run / "bundle"), "--out", str(out)
    )
    assert refused.returncode == 2 and "trained on other data" in refused.stderr


@pytest.mark.slow
def test_cross_fit_runs_score_every_training_face_out_of_sample(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path
):
    runs = [
        train_like_the_shipped_model(
            small_fer_dir, tmp_path / f"fold{index}", "--fold", f"{index}/2"
        )
        for index in range(2)
    ]
    out = tmp_path / "audit"
    result = yuzug_train(
        "audit",
        "--run",
        str(runs[0]),
        "--run",
        str(runs[1]),
        "--out",
        str(out),
        "--min-probability",
        "0.3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "audit.json").read_text())
    full = PreparedData.load(tiny_run / "data.npz")  # the same recipe without a fold
    assert summary["mode"] == "cross-fit"
    assert summary["splits"]["train"]["scored"] == len(full.y["train"])
    assert summary["splits"]["val"]["scored"] == len(full.y["val"])
    flagged = read_exclusion_list(out / "exclude.txt")
    assert flagged <= keys(full, "train")
    with open(out / "label-issues.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # A training face is judged by the one model that never saw it; validation by both.
    assert all(int(row["models"]) == (1 if row["split"] == "train" else 2) for row in rows)

    mixed = yuzug_train("audit", "--run", str(runs[0]), "--run", str(tiny_run), "--out", str(out))
    assert mixed.returncode == 2 and "mix of cross-fit" in mixed.stderr
    bad = yuzug_train("prepare", str(small_fer_dir), "--fold", "2/2", "--run", str(tmp_path / "x"))
    assert bad.returncode == 2 and "0 <= I < K" in bad.stderr


@pytest.mark.slow
def test_a_model_trained_on_fewer_faces_says_so(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path
):
    """Without listed faces (an audit's list) and on a share of the rest (a learning curve)."""
    full = PreparedData.load(tiny_run / "data.npz")
    listing = tmp_path / "exclude.txt"
    listing.write_text("\n".join(sorted(full.keys["train"].tolist())[:7]) + "\n")
    run = str(tmp_path / "clean")
    train_like_the_shipped_model(
        small_fer_dir, Path(run), "--exclude-list", str(listing), "--train-fraction", "0.5"
    )
    for step in ("export", "evaluate"):
        result = yuzug_train(step, "--run", run)
        assert result.returncode == 0, result.stderr[-2000:]
    kept = len(PreparedData.load(Path(run) / "data.npz").y["train"])
    assert abs(kept - (len(full.y["train"]) - 7) / 2) <= len(full.classes)  # rounded per class
    training = load_bundle(Path(run) / "bundle").manifest.training
    assert training["excluded"] == {
        "dropped_from_train": 7,
        "list_sha256": hashlib.sha256(listing.read_bytes()).hexdigest(),
    }
    assert training["train_fraction"] == {
        "fraction": 0.5,
        "kept": kept,
        "of": len(full.y["train"]) - 7,
    }
    card = (Path(run) / "bundle" / "MODEL_CARD.md").read_text()
    assert "Trained without 7 training faces" in card
    assert f"Trained on {kept:,} of {len(full.y['train']) - 7:,} train faces" in card
