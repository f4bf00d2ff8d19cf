"""Near-duplicates of test faces in train: what is a leaked face worth to a test score?

    python bench/leakage.py [--data ZIP] [--model BUNDLE ...] [--test-share 0.5] [--json out.json] \
        [--plot leakage.png]

FER2013's Training split held 757 near-duplicates of PublicTest and PrivateTest faces. The
shared copy removed them; the published 72-73% single networks and the ``fer`` peer trained with
them. Their effect cannot be measured on the test split: the copies are gone. It can be measured
on train's own near-duplicate groups (RMS difference below ``--max-rms`` on 0-255, the test
``prepare`` uses), which stand in for a test face and its training copy: ``prepare`` keeps the
first face of each group (its original) and drops the others (its twins), so no model trains on
a twin. A twin whose original the model trained on is a leaked face; a twin whose original it
never saw (a validation face, or one left out by ``--train-fraction``) is the same kind of face,
not leaked. Their accuracy difference is what a leak is worth per leaked face. Times the share
of the test faces with a copy in FER2013's Training split, estimated from the faces the shared
copy lacks per class (``--test-share`` of them copies of PublicTest faces; PublicTest and
PrivateTest are the same size), it is what the copies add to a test score.

Each bundle's run split is prepared again from its manifest and checked against its
fingerprint, so whether it trained on an original is known, not guessed. Accuracy is argmax
over the model's own labels against the group's label; groups whose faces disagree on the label
are left out (``prepare`` drops them from train).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import add_model_arguments  # noqa: E402
from bench.common import emit  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.errors import YuzugError  # noqa: E402
from edge.preprocess import PreprocessSpec  # noqa: E402
from trainer.audit import prepared_as_trained, trained_selection  # noqa: E402
from trainer.data import (  # noqa: E402
    DEFAULT_DUPLICATE_RMS,
    ClassSelection,
    MissingClassError,
    PrepareReport,
    Sample,
    class_selection,
    find_duplicate_groups,
    read_images,
)

# FER2013's Training split (fer2013.csv rows with Usage "Training", the Kaggle train/ folders):
# 28,709 faces. The shared copy has 757 fewer, the near-duplicates of test faces it removed.
FER2013_TRAINING = {
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "neutral": 4965,
    "sad": 4830,
    "surprise": 3171,
}


@dataclass(frozen=True)
class TwinGroup:
    """A train-only near-duplicate group with one label: the face ``prepare`` keeps and the
    copies it drops."""

    original: int
    twins: tuple[int, ...]


def twin_groups(samples: list[Sample], max_rms: float) -> tuple[list[TwinGroup], dict[str, int]]:
    """Train's near-duplicate groups, each split into the face ``trainer.data.deduplicate``
    keeps (the first by source) and its twins, and counts of the groups left out."""
    canonical = np.stack([s.canonical for s in samples])
    groups: list[TwinGroup] = []
    left_out = {"label_conflict": 0, "held_out_split": 0}
    for members in find_duplicate_groups(canonical, max_rms):
        if any(samples[i].split != "train" for i in members):
            left_out["held_out_split"] += 1
        elif len({samples[i].label for i in members}) > 1:
            left_out["label_conflict"] += 1
        else:
            first, *rest = sorted(members, key=lambda i: samples[i].source)
            groups.append(TwinGroup(first, tuple(rest)))
    return groups, left_out


def scored(hits: np.ndarray) -> dict[str, Any]:
    """How many faces, and the share answered right (None for no faces)."""
    return {"faces": len(hits), "accuracy": round(float(hits.mean()), 4) if len(hits) else None}


def difference(seen: np.ndarray, unseen: np.ndarray) -> dict[str, Any]:
    """Seen minus unseen accuracy with a 95% normal interval (two independent samples)."""
    if not len(seen) or not len(unseen):
        return {"points": None, "ci95": None}
    a, b = float(seen.mean()), float(unseen.mean())
    spread = math.sqrt(a * (1 - a) / len(seen) + b * (1 - b) / len(unseen))
    gap = a - b
    return {
        "points": round(gap, 4),
        "ci95": [round(gap - 1.96 * spread, 4), round(gap + 1.96 * spread, 4)],
    }


def leaked_faces(
    source: Path, selection: ClassSelection, test_share: float
) -> dict[str, float] | None:
    """Per label of ``selection``, the test faces estimated to have a copy in FER2013's Training
    split: the faces the data set's train split lacks against FER2013's, per class, times
    ``test_share``. None when the data set is not a copy of FER2013's seven classes."""
    here = _train_faces_per_class(source)
    if here is None or any(here[c] > FER2013_TRAINING[c] for c in FER2013_TRAINING):
        return None
    _, label_of = class_selection(list(FER2013_TRAINING), *selection)
    leaked: dict[str, float] = {}
    for raw, original in FER2013_TRAINING.items():
        if raw in label_of:
            label = label_of[raw]
            leaked[label] = leaked.get(label, 0.0) + test_share * (original - here[raw])
    return leaked


@functools.lru_cache(maxsize=4)
def _train_faces_per_class(source: Path) -> dict[str, int] | None:
    """Readable train faces per FER2013 class (decoded once per data set, whatever the bundles'
    input sizes); None when one of the seven classes is missing."""
    everything = ClassSelection(list(FER2013_TRAINING), None, None)
    try:
        samples, _ = read_images(source, PreprocessSpec(), everything, _report(source))
    except MissingClassError:
        return None
    return {c: sum(s.split == "train" and s.label == c for s in samples) for c in FER2013_TRAINING}


def _report(source: Path) -> PrepareReport:
    return PrepareReport(source=str(source), classes=[])


def evaluate(source: Path, bundle_dir: Path, max_rms: float, test_share: float) -> dict[str, Any]:
    """One bundle: its accuracy on twins of faces it trained on and of faces it never saw, on
    the test split, and the estimated worth of FER2013's removed copies to its test score."""
    bundle = load_bundle(bundle_dir)
    if bundle.manifest.training.get("excluded"):
        # Its run dropped listed faces from train after the split: which it trained on is
        # not known here, and twins of dropped faces would count as leaked.
        raise ValueError(
            "trained without an exclusion list's faces: its training faces are unknown"
        )
    prepared = prepared_as_trained(source, bundle)
    selection = trained_selection(bundle)
    samples, _ = read_images(source, bundle.preprocess, selection, _report(source))
    groups, left_out = twin_groups(samples, max_rms)
    trained_on = {str(key) for key in prepared.keys.get("train", [])}
    classifier = EmotionClassifier.from_bundle(bundle, num_threads=1)
    index = {label: i for i, label in enumerate(bundle.labels)}

    def hits(faces: list[int]) -> np.ndarray:
        if not faces:
            return np.zeros(0, bool)
        probs = classifier.probabilities(np.stack([samples[i].pixels for i in faces]))
        truth = np.array([index[samples[i].label] for i in faces])
        return np.asarray(probs.argmax(1) == truth)

    seen = [t for g in groups if samples[g.original].key in trained_on for t in g.twins]
    unseen = [t for g in groups if samples[g.original].key not in trained_on for t in g.twins]
    seen_hits, unseen_hits = hits(seen), hits(unseen)
    test_probs = classifier.probabilities(prepared.x["test"])
    test_hits = test_probs.argmax(1) == np.array(
        [index[prepared.classes[y]] for y in prepared.y["test"]]
    )
    gain = difference(seen_hits, unseen_hits)
    name = bundle.manifest.full_name
    result: dict[str, Any] = {
        "model": name,
        "row": f"{bundle.manifest.training.get('preset')} ({name[-17:]})",
        "labels": list(bundle.labels),
        "train_faces": len(trained_on),
        "groups": len(groups),
        "groups_left_out": left_out,
        "twins_of_trained_faces": scored(seen_hits),
        "twins_of_unseen_faces": scored(unseen_hits),
        "test": scored(test_hits),
        "leak_gain": gain,
    }
    leaked = leaked_faces(source, selection, test_share)
    if leaked is not None and gain["points"] is not None:
        faces = sum(leaked.values())
        result["fer2013_copies"] = {
            "test_share": test_share,
            "leaked_test_faces": round(faces, 1),
            "by_label": {label: round(n, 1) for label, n in leaked.items()},
            "share_of_test": round(faces / len(test_hits), 4),
            "inflation_points": round(faces / len(test_hits) * gain["points"], 4),
            # Were every leaked face right: memorising can add no more than this.
            "ceiling_points": round(
                faces / len(test_hits) * (1 - result["twins_of_unseen_faces"]["accuracy"]), 4
            ),
        }
    return result


def format_table(results: list[dict[str, Any]]) -> str:
    def pct(block: dict[str, Any]) -> str:
        return f"{block['accuracy']:.1%} ({block['faces']})" if block["faces"] else "-"

    lines = [
        "| model | train faces | twins of trained faces | twins of unseen faces | leak gain per "
        "face (95% CI) | test | est. leaked test faces | est. inflation (ceiling) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        gain = r["leak_gain"]
        gain_text = (
            f"{100 * gain['points']:+.1f} ({100 * gain['ci95'][0]:+.1f} to "
            f"{100 * gain['ci95'][1]:+.1f})"
            if gain["points"] is not None
            else "-"
        )
        copies = r.get("fer2013_copies")
        lines.append(
            f"| {r['row']} | {r['train_faces']:,} | {pct(r['twins_of_trained_faces'])} "
            f"| {pct(r['twins_of_unseen_faces'])} | {gain_text} | {pct(r['test'])} | "
            + (
                f"{copies['leaked_test_faces']:.0f} ({copies['share_of_test']:.1%}) | "
                f"{100 * copies['inflation_points']:+.2f} points "
                f"({100 * copies['ceiling_points']:+.2f}) |"
                if copies
                else "- | - |"
            )
        )
    return "\n".join(lines)


BARS = (
    ("twins_of_trained_faces", "twins of faces it trained on (leaked)", "tab:red"),
    ("twins_of_unseen_faces", "twins of faces it never saw", "tab:orange"),
    ("test", "test split", "tab:blue"),
)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """A group of bars per model: accuracy on leaked twins, on unleaked twins and on test, with
    95% intervals, so how easy recurring faces are and what the leak adds show at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(results) + 2), 4.5))
    width = 0.27
    for offset, (key, label, colour) in enumerate(BARS):
        xs, heights, errors = [], [], []
        for i, r in enumerate(results):
            block = r[key]
            if not block["faces"]:
                continue
            p = block["accuracy"]
            xs.append(i + (offset - 1) * width)
            heights.append(100 * p)
            errors.append(196 * math.sqrt(p * (1 - p) / block["faces"]))
        axes.bar(xs, heights, width, yerr=errors, capsize=3, label=label, color=colour)
    axes.set_xticks(range(len(results)))
    axes.set_xticklabels(
        [
            f"{r['row']}\n{len(r['labels'])} labels, {r['train_faces']:,} train faces"
            for r in results
        ],
        fontsize=7,
    )
    axes.set_ylabel("accuracy, % (95% interval)")
    axes.set_ylim(0, 118)
    axes.set_title("Near-duplicates: recurring faces are easy; a leak adds what a model memorises")
    axes.title.set_fontsize(9)
    axes.legend(fontsize=7, loc="upper center", ncol=3)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Bundles only: a peer's training faces are not known face by face.
    add_model_arguments(parser, peers=False)
    parser.add_argument(
        "--max-rms",
        type=float,
        default=DEFAULT_DUPLICATE_RMS,
        help="near-duplicate threshold, RMS difference on 0-255 (default: prepare's, %(default)s)",
    )
    parser.add_argument(
        "--test-share",
        type=float,
        default=0.5,
        help="share of the removed copies that copy a test-split face (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="draw the accuracies here (PNG)")
    args = parser.parse_args()
    if not 0 <= args.test_share <= 1:
        parser.error(f"--test-share must be in [0, 1], got {args.test_share}")
    results = []
    for model in args.model or [ROOT / "models" / "default"]:
        try:
            results.append(evaluate(args.data, model, args.max_rms, args.test_share))
        except (YuzugError, ValueError, OSError) as error:
            raise SystemExit(f"--model {model}: {error}") from error
    print(format_table(results))
    if args.plot:
        plot(results, args.plot)
    emit({"models": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
