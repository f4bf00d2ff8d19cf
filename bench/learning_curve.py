"""Learning curve: how much would more training faces buy?

    yuzug-train prepare DATA --run runs/lc50 --train-fraction 0.5   # and 0.25, 0.125, ...
    yuzug-train fit --run runs/lc50 --epochs 28 ...                  # the same optimizer steps
    python bench/learning_curve.py --model runs/lc12/bundle --model runs/lc25/bundle \
        --model runs/lc50/bundle --model runs/full/bundle [--target 0.88] [--plot curve.png]

Scores each bundle like ``bench/accuracy.py`` (int8, the daemon's classifier, argmax among the
emotions on the test split), reads how many train faces it learnt from in its manifest, and fits
accuracy = a + b * log2(train faces) by least squares: b is the points gained per doubling of
the faces, with its standard error when there are more points than two (seeds of the same
share count as points of their own). From the fit it extrapolates the train faces that
``--target`` would take, with a range from the slope's 95% interval. Learning curves flatten as
they go, so a straight line in log2(faces) promises too much: the figure is the fewest faces the
target would take under this recipe, not an estimate that it would be reached.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import (  # noqa: E402
    DEFAULT_EMOTIONS,
    add_model_arguments,
    bundle_candidate,
    evaluate_model,
)
from edge.bundle import load_bundle  # noqa: E402
from trainer.evaluate import ABSTAIN_MIN_CONFIDENCE  # noqa: E402

# Two-sided 95% quantile of Student's t by degrees of freedom (1-10); a normal 1.96 beyond.
T_95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def train_faces(bundle_dir: Path) -> int:
    """How many train faces the bundle learnt from, by its manifest's per-class counts."""
    counts = (load_bundle(bundle_dir).manifest.training.get("counts") or {}).get("train")
    if not counts:
        raise SystemExit(f"--model {bundle_dir}: its manifest records no train counts")
    return int(sum(counts.values()))


def fit_log_linear(faces: Sequence[int], accuracy: Sequence[float]) -> dict[str, Any]:
    """Least squares accuracy = intercept + per_doubling * log2(faces).

    ``per_doubling_se`` (the slope's standard error) and ``per_doubling_95`` need at least
    three points; with two the line passes through both and has no error to estimate.
    """
    x = np.log2(np.asarray(faces, float))
    y = np.asarray(accuracy, float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("a learning curve needs bundles trained on at least two face counts")
    x_mean, y_mean = float(x.mean()), float(y.mean())
    spread = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (y - y_mean)).sum() / spread)
    fit: dict[str, Any] = {
        "points": len(x),
        "intercept": y_mean - slope * x_mean,
        "per_doubling": slope,
        "log2_faces_mean": x_mean,
        "accuracy_mean": y_mean,
        "per_doubling_se": None,
        "per_doubling_95": None,
    }
    freedom = len(x) - 2
    if freedom > 0:
        residual = y - (fit["intercept"] + slope * x)
        se = math.sqrt(float((residual**2).sum()) / freedom / spread)
        t = T_95[freedom - 1] if freedom <= len(T_95) else 1.96
        fit["per_doubling_se"] = se
        fit["per_doubling_95"] = [slope - t * se, slope + t * se]
    return fit


def faces_for(target: float, fit: dict[str, Any], slope: float | None = None) -> float | None:
    """Train faces at which the fitted line (or one of ``slope`` through the same centre of
    the points) reaches ``target``; None when that line does not rise."""
    slope = fit["per_doubling"] if slope is None else slope
    if slope <= 0:
        return None
    return float(2 ** (fit["log2_faces_mean"] + (target - fit["accuracy_mean"]) / slope))


def extrapolate(target: float, fit: dict[str, Any], most_faces: int) -> dict[str, Any]:
    """The faces ``target`` would take: on the fitted line, and on the lines of the slope's
    95% interval (the steeper one needs fewer faces; a flat one never gets there)."""
    needed = faces_for(target, fit)
    result: dict[str, Any] = {
        "target": target,
        "faces": needed,
        "times_the_most_here": None if needed is None else needed / most_faces,
        "faces_range": None,
    }
    if fit["per_doubling_95"]:
        low, high = fit["per_doubling_95"]
        result["faces_range"] = [faces_for(target, fit, high), faces_for(target, fit, low)]
    return result


def recall_slopes(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each emotion's recall gained per doubling of the train faces: which class more faces
    would help most."""
    faces = [row["train_faces"] for row in rows]
    return {
        label: fit_log_linear(faces, [row["recall"][label] for row in rows])["per_doubling"]
        for label in rows[0]["recall"]
    }


def format_report(rows: list[dict[str, Any]], fit: dict[str, Any], goal: dict[str, Any]) -> str:
    lines = [
        "| model | train faces | accuracy | macro-F1 | lowest recall |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: r["train_faces"]):
        lines.append(
            f"| {row['row']} | {row['train_faces']:,} | {row['accuracy']:.1%} | "
            f"{row['macro_f1']:.3f} | {min(row['recall'].values()):.1%} |"
        )
    slope = f"{fit['per_doubling'] * 100:+.2f} points per doubling of the train faces"
    if fit["per_doubling_95"]:
        low, high = fit["per_doubling_95"]
        slope += f" (95% {low * 100:+.2f} to {high * 100:+.2f}, {fit['points']} points)"
    lines.append(slope)
    if fit.get("recall_per_doubling"):
        lines.append(
            "recall per doubling: "
            + ", ".join(f"{k} {v * 100:+.2f}" for k, v in fit["recall_per_doubling"].items())
        )
    target = f"{goal['target']:.1%}"
    if goal["faces"] is None:
        lines.append(f"{target}: not reached on this line (it does not rise)")
    else:
        reach = f"{target}: at about {goal['faces']:,.0f} train faces "
        reach += f"({goal['times_the_most_here']:.1f} times the most here)"
        if goal["faces_range"]:
            low, high = goal["faces_range"]
            reach += f", {low:,.0f} to " + ("never" if high is None else f"{high:,.0f}")
        lines.append(
            reach + "; a straight line in log2(faces) promises too much, so read it as the "
            "fewest faces the target would take with this recipe"
        )
    return "\n".join(lines)


def plot_curve(
    rows: list[dict[str, Any]], fit: dict[str, Any], goal: dict[str, Any], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    figure, axes = plt.subplots(figsize=(6.4, 4.5))
    faces = np.array([row["train_faces"] for row in rows], float)
    accuracy = np.array([row["accuracy"] * 100 for row in rows])
    axes.scatter(faces, accuracy, color="tab:blue", zorder=3, label="int8 bundle")
    for count in sorted(set(faces.tolist())):
        here = accuracy[faces == count]  # seeds of one share: their mean, and how many
        text = f"{here.mean():.1f}" + (f" ({len(here)})" if len(here) > 1 else "")
        axes.annotate(
            text, (count, here.mean()), xytext=(6, -12), textcoords="offset points", fontsize=8
        )

    def line(span: np.ndarray) -> np.ndarray:
        return (fit["intercept"] + fit["per_doubling"] * np.log2(span)) * 100

    measured = np.geomspace(faces.min(), faces.max(), 20)
    axes.plot(measured, line(measured), color="tab:blue", alpha=0.7, label="log-linear fit")
    ticks = sorted(set(faces.tolist()))
    if goal["faces"]:
        # Drawn out to the target (at most 64 times the faces here), dotted: extrapolated.
        reach = min(goal["faces"], faces.max() * 64)
        beyond = np.geomspace(faces.max(), reach, 20)
        axes.plot(
            beyond, line(beyond), color="tab:blue", alpha=0.7, linestyle=":", label="extrapolated"
        )
        ticks.append(reach)
    axes.axhline(goal["target"] * 100, color="tab:red", linestyle="--", label="target")
    axes.set_ylim(accuracy.min() - 1.5, max(goal["target"] * 100, accuracy.max()) + 2)
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.tick_params(axis="x", labelsize=8, labelrotation=30)
    axes.set_xlabel("train faces (log scale)")
    axes.set_ylabel("test accuracy, %")
    axes.set_title(f"{fit['per_doubling'] * 100:+.2f} points per doubling of the train faces")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--target", type=float, default=0.88, help="accuracy to extrapolate to")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="draw the curve and its fit here (PNG)")
    args = parser.parse_args(argv)
    if args.peer:
        parser.error("--peer: a peer's model has no train counts to place on a curve")
    if not args.model or len(args.model) < 2:
        parser.error("--model: give the bundles of at least two train shares")
    # Read first: a bundle without train counts is refused before any bundle is scored.
    faces = {bundle_dir: train_faces(bundle_dir) for bundle_dir in args.model}
    rows = []
    for bundle_dir in args.model:
        result = evaluate_model(
            bundle_candidate(bundle_dir), args.data, DEFAULT_EMOTIONS, ABSTAIN_MIN_CONFIDENCE
        )
        rows.append(
            {
                "model": result["model"],
                "row": result["row"],
                "bundle": str(bundle_dir),
                "train_faces": faces[bundle_dir],
                "accuracy": result["accuracy"],
                "macro_f1": result["macro_f1"],
                "recall": result["recall"],
            }
        )
    try:
        fit = fit_log_linear([r["train_faces"] for r in rows], [r["accuracy"] for r in rows])
    except ValueError as error:
        parser.error(f"--model: {error}")
    fit["recall_per_doubling"] = recall_slopes(rows)
    goal = extrapolate(args.target, fit, max(r["train_faces"] for r in rows))
    print(format_report(rows, fit, goal))
    if args.plot:
        plot_curve(rows, fit, goal, args.plot)
    if args.json:
        results = {"bundles": rows, "fit": fit, "target": goal}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
