"""bench/accuracy.py --ensemble: the mean of the members' probabilities, scored like a bundle;
and a bad --model or --data is one line naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.accuracy import bundle_candidate, contradicted, ensemble_result, evaluate_model
from trainer.metrics import target_report

LABELS = ["angry", "happy", "none"]


def member(probs: list[list[float]], size_kib: float, median_ms: float) -> dict:
    y = np.array([0, 1, 0, 1])
    arrays = {
        "pixels": np.zeros((4, 8, 8, 1), np.uint8),
        "y": y,
        "keys": np.array([f"face{i}" for i in range(len(y))]),
        "labels": LABELS,
        "others": ["none"],
        "probs": np.array(probs),
        "flip_probs": np.array(probs),
    }
    latency = {"median_ms": median_ms, "p90_ms": median_ms * 2}
    return {
        "model": f"m{size_kib}",
        "size_kib": size_kib,
        "latency": latency,
        "flip_average": {"latency": latency},
        "_arrays": arrays,
    }


def test_ensemble_scores_the_mean_probability_and_sums_costs():
    # Each member is sure and right on two faces, unsure and wrong on the other two.
    first = member([[0.9, 0.1, 0], [0.1, 0.9, 0], [0.4, 0.6, 0], [0.6, 0.4, 0]], 100, 0.5)
    second = member([[0.4, 0.6, 0], [0.6, 0.4, 0], [0.9, 0.1, 0], [0.1, 0.9, 0]], 200, 0.7)
    for single in (first, second):
        arrays = single["_arrays"]
        assert target_report(arrays["y"], arrays["probs"], LABELS, "none")["accuracy"] == 0.5
    result = ensemble_result([first, second], min_confidence=0.5)
    assert result["accuracy"] == 1.0 and result["flip_average"]["accuracy"] == 1.0
    assert result["size_kib"] == 300 and result["members"] == ["m100", "m200"]
    assert result["latency"] == {"median_ms": pytest.approx(1.2), "p90_ms": pytest.approx(2.4)}
    assert "neutral" not in result  # no member had neutral faces to score
    assert result["contradicted"]["images"] == 0


def test_contradicted_counts_firm_disagreements_on_emotion_faces_only():
    arrays = {
        "y": np.array([0, 0, 1, 2, 1]),
        "labels": LABELS,
        "others": ["none"],
        "probs": np.array(
            [
                [0.05, 0.85, 0.10],  # an "angry" face firmly called happy: contradicted
                [0.35, 0.60, 0.05],  # called happy, but not firmly
                [0.10, 0.90, 0.00],  # right
                [0.90, 0.05, 0.05],  # a "none" face: not an emotion face, not counted
                [0.81, 0.00, 0.19],  # among the emotions alone, 0.81 / 0.81 on angry: counted
            ]
        ),
    }
    found = contradicted(arrays)
    assert found["images"] == 2 and found["indices"] == [0, 4] and found["predicted"] == [1, 0]
    assert found["by_label"] == {"angry": 1, "happy": 1}
    assert found["share"] == pytest.approx(2 / 4)
    assert found["accuracy_without"] == pytest.approx(1 / 2)  # faces 1 (wrong) and 2 (right)


def test_ensemble_refuses_members_with_other_labels():
    first = member([[1, 0, 0]] * 4, 1, 1)
    other = member([[1, 0, 0]] * 4, 1, 1)
    other["_arrays"]["labels"] = ["happy", "angry", "none"]
    with pytest.raises(SystemExit, match="other labels"):
        ensemble_result([first, other], min_confidence=0.5)


def test_a_bad_model_or_data_set_is_one_line_naming_it(tmp_path: Path):
    with pytest.raises(SystemExit, match=f"--model {tmp_path}/gone: .*not a directory"):
        bundle_candidate(tmp_path / "gone")
    truncated = tmp_path / "faces.zip"
    truncated.write_bytes(b"PK\x03\x04 cut short")
    shipped = bundle_candidate(Path(__file__).parents[2] / "models" / "default")
    with pytest.raises(SystemExit) as refused:
        evaluate_model(shipped, truncated, ["angry", "happy", "sad"], 0.5)
    # The data set's path once, then why.
    assert str(refused.value).endswith(
        f": {truncated}: not a readable zip archive (File is not a zip file)"
    )
    with pytest.raises(SystemExit) as absent:  # was a FileNotFoundError traceback
        evaluate_model(shipped, tmp_path / "nowhere.zip", ["angry", "happy", "sad"], 0.5)
    assert str(absent.value).endswith(f": {tmp_path / 'nowhere.zip'}: data set not found")


@pytest.mark.parametrize(("reference_only", "candidate_only"), [(0, 0), (0, 10), (7, 3), (40, 62)])
def test_mcnemar_p_is_the_exact_binomial_test(reference_only: int, candidate_only: int):
    from scipy.stats import binomtest

    from bench.accuracy import mcnemar_p

    expected = (
        1.0
        if reference_only + candidate_only == 0
        else binomtest(candidate_only, reference_only + candidate_only, 0.5).pvalue
    )
    assert mcnemar_p(reference_only, candidate_only) == pytest.approx(expected, rel=1e-9)


def test_paired_difference_pairs_faces_by_key_not_by_row():
    from bench.accuracy import paired_difference

    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    keys = np.array([f"test/{LABELS[c]}/{i}.jpg" for i, c in enumerate(y)])

    def arrays(right: np.ndarray, order: np.ndarray) -> dict:
        probs = np.zeros((n, 3))
        predicted = np.where(right, y, 1 - y)
        probs[np.arange(n), predicted] = 0.8
        probs[np.arange(n), 1 - predicted] = 0.2
        return {"y": y[order], "keys": keys[order], "labels": LABELS, "others": ["none"],
                "probs": probs[order]}  # fmt: skip

    reference_right = rng.random(n) < 0.8
    candidate_right = reference_right.copy()
    candidate_right[np.flatnonzero(~reference_right)[:30]] = True  # fixes 30 faces
    candidate_right[np.flatnonzero(reference_right)[:10]] = False  # breaks 10
    identity, shuffled = np.arange(n), rng.permutation(n)
    paired = paired_difference(arrays(reference_right, identity), arrays(candidate_right, shuffled))
    assert paired["faces"] == n
    assert (paired["candidate_only_right"], paired["reference_only_right"]) == (30, 10)
    assert paired["accuracy_difference"] == pytest.approx(20 / n, abs=1e-4)
    low, high = paired["ci95"]
    assert low < 20 / n < high and low > 0  # 30 against 10 is beyond chance on 400 faces
    assert paired["mcnemar_p"] < 0.01
    # Misaligned rows (pairing by position) would see about 2 x 0.8 x 0.2 x 400 discordant faces.
    same = paired_difference(arrays(reference_right, identity), arrays(reference_right, shuffled))
    assert same["candidate_only_right"] == same["reference_only_right"] == 0
