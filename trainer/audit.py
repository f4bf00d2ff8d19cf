"""Label audit (``yuzug-train audit``): training faces whose label the models firmly contradict.

FER2013's labels are noisy (crying faces labelled angry, snarls labelled sad), and a small
model spends capacity memorising them. The audit scores every training and validation face
with one or more int8 bundles, averages their probabilities and lists the faces to which they
give another label with at least ``min_probability``: a list for a look (``--draw``) and an
exclusion list that ``yuzug-train prepare --exclude-list`` drops from train.

Two kinds of bundles:

* **cross-fit** bundles (trained with ``--fold I/K``): each scores only the fold it never saw,
  so every training face gets an out-of-sample judgement (confident learning; Northcutt et al.,
  2021). The K folds of one recipe are K bundles.
* ordinary bundles score train **in sample**: they have seen those labels and partly memorised
  them, so they flag fewer faces; what they still contradict is the clearest noise.

Validation faces are out of sample for both, so their flagged share is the check on what the
threshold means; the audit never touches test.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.bundle import ModelBundle, load_bundle
from edge.classify.emotion import EmotionClassifier
from edge.preprocess import PreprocessSpec, to_float
from trainer.data import ClassSelection, PreparedData, prepare
from trainer.model import load_trained

logger = logging.getLogger(__name__)

DEFAULT_MIN_PROBABILITY = 0.8


@dataclass
class FaceScores:
    """Probabilities summed per face key over the bundles that scored it."""

    labels: list[str]
    split: dict[str, str] = field(default_factory=dict)
    label: dict[str, int] = field(default_factory=dict)
    total: dict[str, np.ndarray] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pixels: dict[str, np.ndarray] = field(default_factory=dict)

    def add(
        self, split: str, keys: np.ndarray, y: np.ndarray, x: np.ndarray, probs: np.ndarray
    ) -> None:
        for key, label, pixels, row in zip(keys.tolist(), y, x, probs, strict=True):
            self.split[key], self.label[key], self.pixels[key] = split, int(label), pixels
            self.total[key] = self.total.get(key, 0) + row
            self.count[key] += 1


@dataclass
class Scorer:
    """One model with the data split as its run split it: a bundle or a run's Keras model."""

    name: str
    fold: tuple[int, int] | None
    recipe: tuple[Any, ...]
    prepared: Callable[[], PreparedData]
    predict: Callable[[np.ndarray], np.ndarray]


def _fold(fold: dict[str, int] | None) -> tuple[int, int] | None:
    return (int(fold["index"]), int(fold["count"])) if fold else None


@functools.lru_cache(maxsize=8)
def _prepare_as_trained(
    data: Path,
    spec: PreprocessSpec,
    targets: tuple[str, ...],
    abstain: str | None,
    other_classes: tuple[str, ...] | None,
    seed: int,
    fold: tuple[int, int] | None,
    train_fraction: float,
) -> PreparedData:
    """The data set split as a run split it; bundles of one recipe and fold share one copy
    (decoding and de-duplicating FER2013 takes seconds per call)."""
    prepared, _ = prepare(
        data,
        spec,
        list(targets),
        other_label=abstain,
        other_classes=list(other_classes) if other_classes else None,
        seed=seed,
        fold=fold,
        train_fraction=train_fraction,
    )
    return prepared


def trained_selection(bundle: ModelBundle) -> ClassSelection:
    """The classes the bundle's run read: its labels but the abstain one, and the abstain
    label with the source classes that fed it (None: all the others)."""
    abstain = bundle.manifest.abstain_label
    other_classes = bundle.manifest.training.get("other_classes")
    return ClassSelection(
        [label for label in bundle.labels if label != abstain],
        abstain,
        list(other_classes) if other_classes else None,
    )


def prepared_as_trained(data: Path, bundle: ModelBundle) -> PreparedData:
    """``data`` split as the bundle's run split it (its classes, seed, fold and share of the
    train faces), checked against the manifest's fingerprint, so which faces the model trained
    on is known."""
    training = bundle.manifest.training
    selection = trained_selection(bundle)
    data_split = _prepare_as_trained(
        data,
        bundle.preprocess,
        tuple(selection.classes or ()),
        selection.other_label,
        tuple(selection.other_classes) if selection.other_classes else None,
        int(training.get("seed", 1337)),
        _fold(training.get("fold")),
        float((training.get("train_fraction") or {}).get("fraction", 1.0)),
    )
    expected = training.get("data_fingerprint")
    if training.get("excluded"):
        logger.warning(
            "%s was trained without listed faces: its split is not checked",
            bundle.manifest.full_name,
        )
    elif expected and expected != data_split.fingerprint:
        raise ValueError(
            f"{bundle.manifest.full_name} was trained on other data than {data} gives "
            f"(fingerprint {expected[:12]}, here {data_split.fingerprint[:12]}): pass the data "
            "set it was trained on"
        )
    return data_split


def bundle_scorer(data: Path, path: Path, threads: int = 1) -> Scorer:
    """An int8 bundle, run by the daemon's classifier; the data set is prepared again as its
    run prepared it and checked against the manifest's fingerprint."""
    bundle = load_bundle(path)
    training = bundle.manifest.training
    classifier = EmotionClassifier.from_bundle(bundle, num_threads=threads)
    return Scorer(
        name=bundle.manifest.full_name,
        fold=_fold(training.get("fold")),
        recipe=(
            tuple(bundle.labels),
            bundle.preprocess,
            tuple(training.get("other_classes") or ()),
            training.get("seed"),
        ),
        prepared=lambda: prepared_as_trained(data, bundle),
        predict=classifier.probabilities,
    )


def run_scorer(run_dir: Path) -> Scorer:
    """A run directory's Keras model (calibrated if it was) on the run's own prepared data:
    the quick way on the machine that trained the cross-fit models, before any export."""
    data = PreparedData.load(run_dir / "data.npz")
    report = json.loads((run_dir / "prepare_report.json").read_text())
    model = load_trained(run_dir / "model.keras")
    return Scorer(
        name=str(run_dir),
        fold=_fold(report.get("fold")),
        recipe=(
            tuple(data.classes),
            data.spec,
            tuple(report.get("other_classes") or ()),
            report.get("seed", "run"),
        ),
        prepared=lambda: data,
        predict=lambda x: np.asarray(
            model.predict(to_float(x, data.spec), batch_size=256, verbose=0)
        ),
    )


def _predict_with_progress(
    scorer: Scorer, x: np.ndarray, split: str, chunk: int = 512
) -> np.ndarray:
    with tqdm(total=len(x), desc=f"{split}: {scorer.name}", unit="face", leave=False) as bar:
        parts = []
        for start in range(0, len(x), chunk):
            parts.append(scorer.predict(x[start : start + chunk]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, len(scorer.recipe[0])), np.float32)


def score_faces(scorers: list[Scorer]) -> tuple[FaceScores, str]:
    """Scores train (the held-out fold, for cross-fit models) and validation with each model."""
    if not scorers:
        raise ValueError("give at least one --model bundle or --run directory")
    if len({scorer.recipe for scorer in scorers}) > 1:
        raise ValueError(
            "the models differ in labels, preprocessing, abstain classes or seed: an audit "
            "averages models of one recipe's data"
        )
    folds = [scorer.fold for scorer in scorers]
    if any(folds) and not all(folds):
        raise ValueError(
            "mix of cross-fit (--fold) and ordinary models: the first score train out of "
            "sample, the others in sample; audit them separately"
        )
    scores = FaceScores(labels=list(scorers[0].recipe[0]))
    for scorer in scorers:
        prepared = scorer.prepared()
        if not prepared.keys:
            raise ValueError(
                f"{scorer.name}: its data was prepared without face keys; prepare again"
            )
        for split in ("heldout" if scorer.fold else "train", "val"):
            x = prepared.x[split]
            scores.add(
                "train" if split == "heldout" else split,
                prepared.keys[split],
                prepared.y[split],
                x,
                _predict_with_progress(scorer, x, split),
            )
    if all(folds):
        counts = {fold[1] for fold in folds if fold}
        seen = {fold[0] for fold in folds if fold}
        if len(counts) > 1 or seen != set(range(next(iter(counts)))):
            logger.warning(
                "cross-fit folds %s of %s: training faces of the missing folds go unscored",
                sorted(seen),
                sorted(counts),
            )
    return scores, "cross-fit" if all(folds) else "in-sample"


def find_label_issues(
    scores: FaceScores, min_probability: float = DEFAULT_MIN_PROBABILITY
) -> list[dict[str, Any]]:
    """Faces whose mean probability for another label is >= ``min_probability``, firmest first."""
    issues = []
    for key, total in scores.total.items():
        mean = total / scores.count[key]
        predicted = int(mean.argmax())
        label = scores.label[key]
        if predicted != label and mean[predicted] >= min_probability:
            issues.append(
                {
                    "key": key,
                    "split": scores.split[key],
                    "label": scores.labels[label],
                    "predicted": scores.labels[predicted],
                    "p_label": round(float(mean[label]), 4),
                    "p_predicted": round(float(mean[predicted]), 4),
                    "models": scores.count[key],
                }
            )
    return sorted(issues, key=lambda issue: (-issue["p_predicted"], issue["key"]))


def summarise(
    scores: FaceScores, issues: list[dict[str, Any]], mode: str, min_probability: float
) -> dict[str, Any]:
    summary: dict[str, Any] = {"mode": mode, "min_probability": min_probability, "splits": {}}
    for split in ("train", "val"):
        scored = [key for key, where in scores.split.items() if where == split]
        flagged = [issue for issue in issues if issue["split"] == split]
        by_label: dict[str, int] = defaultdict(int)
        moves: dict[str, int] = defaultdict(int)
        for issue in flagged:
            by_label[issue["label"]] += 1
            moves[f"{issue['label']}>{issue['predicted']}"] += 1
        summary["splits"][split] = {
            "scored": len(scored),
            "flagged": len(flagged),
            "share": round(len(flagged) / max(1, len(scored)), 4),
            "by_label": dict(by_label),
            "label>predicted": dict(sorted(moves.items(), key=lambda item: -item[1])),
        }
    return summary


def write_audit(
    out: Path,
    scores: FaceScores,
    issues: list[dict[str, Any]],
    summary: dict[str, Any],
    sources: list[Path],
) -> Path:
    """label-issues.csv (train and val), exclude.txt (train only) and audit.json."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "label-issues.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, ["key", "split", "label", "predicted", "p_label", "p_predicted", "models"]
        )
        writer.writeheader()
        writer.writerows(issues)
    exclusion = out / "exclude.txt"
    train = [issue for issue in issues if issue["split"] == "train"]
    header = [
        "# yuzug-train audit: training faces the models firmly give another label",
        f"# mode {summary['mode']}, min probability {summary['min_probability']}, "
        f"{len(sources)} model(s): {', '.join(str(path) for path in sources)}",
        f"# {len(train)} faces; use with: yuzug-train prepare --exclude-list {exclusion}",
    ]
    exclusion.write_text("\n".join([*header, *(issue["key"] for issue in train)]) + "\n")
    summary = {**summary, "models": [str(path) for path in sources]}
    (out / "audit.json").write_text(json.dumps(summary, indent=2) + "\n")
    return exclusion


def draw_issues(scores: FaceScores, issues: list[dict[str, Any]], path: Path, most: int) -> None:
    """A grid of the firmest flagged faces captioned 'label>predicted' (data-set faces: for a
    look, never for the repository)."""
    from trainer.plots import face_grid

    shown = issues[:most]
    face_grid(
        [scores.pixels[issue["key"]] for issue in shown],
        [f"{issue['label'][:3]}>{issue['predicted'][:3]}" for issue in shown],
        path,
    )


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"label audit ({summary['mode']}, another label with p >= {summary['min_probability']}):"
    ]
    for split, found in summary["splits"].items():
        moves = ", ".join(f"{move} {n}" for move, n in list(found["label>predicted"].items())[:6])
        lines.append(
            f"  {split}: {found['flagged']:,} of {found['scored']:,} faces "
            f"({100 * found['share']:.1f}%){': ' + moves if moves else ''}"
        )
    return "\n".join(lines)
