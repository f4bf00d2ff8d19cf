"""Can per-class offsets lift a model's weakest recall? Fits them on validation, scores test once.

    python bench/class_offsets.py --model models/default [--data fer2013.zip] [--json out.json]

An offset per class added to the log-probabilities, ``softmax(log p + b)`` (what
:func:`trainer.metrics.scaled` computes with ``offsets``), moves decisions between classes
without retraining: the cheapest way to trade recall of a strong class (happy) for the weak ones
(angry, sad), and exactly what a bias on the last layer would bake in. The offsets are searched
on the bundle's validation split as its run made it (checked against the manifest's data
fingerprint) for two objectives, macro-F1 and the smallest recall, then applied to the test
split once. Faces are scored among the target emotions, as bench/accuracy.py does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.bundle import load_bundle  # noqa: E402
from edge.personalize import coordinate_ascent  # noqa: E402
from trainer.audit import bundle_scorer  # noqa: E402
from trainer.metrics import Others, other_labels, scaled, target_report  # noqa: E402

OFFSET_GRID = np.round(np.arange(-2.0, 2.0001, 0.05), 2)
OBJECTIVES = ("macro_f1", "min_recall")


def summary(y: np.ndarray, probs: np.ndarray, labels: list[str], others: Others) -> dict[str, Any]:
    report = target_report(y, probs, labels, others)
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "recall": {k: v["recall"] for k, v in report["per_class"].items()},
    }


def objective_value(scores: dict[str, Any], objective: str) -> float:
    if objective == "macro_f1":
        return float(scores["macro_f1"])
    # The smallest recall; accuracy breaks ties between offsets that reach the same one.
    return float(min(scores["recall"].values())) + 1e-3 * float(scores["accuracy"])


def fit_offsets(
    probs: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    others: Others,
    objective: str,
    passes: int = 3,
) -> np.ndarray:
    """Coordinate ascent over :data:`OFFSET_GRID`, one target class at a time; the first
    target stays at 0 (only differences between offsets matter) and so do "other" outputs."""
    skipped = other_labels(others)
    targets = [i for i, label in enumerate(labels) if label not in skipped]

    def score(candidate: np.ndarray) -> float:
        scores = summary(y, scaled(probs, offsets=candidate), labels, others)
        return objective_value(scores, objective)

    return coordinate_ascent(score, len(labels), targets[1:], OFFSET_GRID, passes)


def evaluate(model: Path, data: Path) -> dict[str, Any]:
    bundle = load_bundle(model)
    labels, others = list(bundle.labels), bundle.manifest.abstain_label
    scorer = bundle_scorer(data, model)
    prepared = scorer.prepared()
    probs = {split: scorer.predict(prepared.x[split]) for split in ("val", "test")}
    y = {split: prepared.y[split] for split in ("val", "test")}
    rows: list[dict[str, Any]] = [{"objective": "none", "offsets": dict.fromkeys(labels, 0.0)}]
    for objective in OBJECTIVES:
        offsets = fit_offsets(probs["val"], y["val"], labels, others, objective)
        rows.append(
            {"objective": objective, "offsets": dict(zip(labels, offsets.tolist(), strict=True))}
        )
    for row in rows:
        offsets = np.array(list(row["offsets"].values()))
        for split in ("val", "test"):
            row[split] = summary(y[split], scaled(probs[split], offsets=offsets), labels, others)
    return {
        "model": bundle.manifest.full_name,
        "faces": {split: int(len(y[split])) for split in y},
        "rows": rows,
    }


def format_rows(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} (val and test as its run split them)"]
    for row in result["rows"]:
        offsets = ", ".join(f"{k} {v:+.2f}" for k, v in row["offsets"].items() if v)
        cells = []
        for split in ("val", "test"):
            scores = row[split]
            recalls = " / ".join(f"{v:.1%}" for v in scores["recall"].values())
            cells.append(
                f"{split} {scores['accuracy']:.1%}, F1 {scores['macro_f1']:.3f}, recall {recalls}"
            )
        lines.append(f"  {row['objective']:<10} [{offsets or 'no offsets'}]: " + "; ".join(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    try:
        result = evaluate(args.model, args.data)
    except ValueError as error:
        raise SystemExit(f"{args.model}: {error}") from error
    print(format_rows(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
