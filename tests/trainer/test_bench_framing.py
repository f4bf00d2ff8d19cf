"""bench/framing.py --against: other bundles are scored on the same found faces and paired
with --model face by face."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.framing import DAEMON, main

ROOT = Path(__file__).resolve().parents[2]


def test_other_bundles_are_paired_with_the_model_on_the_same_faces(
    fer_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # The shipped model, cut without a margin: its daemon crop is the main model's margin-0 row.
    unmargined = tmp_path / "margin0"
    shutil.copytree(ROOT / "models" / "default", unmargined)
    manifest = json.loads((unmargined / "manifest.json").read_text())
    manifest["preprocess"]["margin"] = 0.0
    (unmargined / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "framing.json"
    shipped = ROOT / "models" / "default"
    argv = ["--data", str(fer_zip), "--limit", "20"]
    argv += ["--against", str(shipped), "--against", str(unmargined)]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 55 <= result["found"] <= result["faces"] == 60
    rows = {row["crop"]: row for row in result["rows"]}
    same, other = result["against"]

    for crop, key in ((DAEMON, "daemon_crop"), ("as framed", "as_framed")):
        assert same[key]["accuracy"] == rows[crop]["accuracy"]
        paired = same[key]["paired"]
        assert paired["faces"] == result["found"]
        assert (paired["accuracy_difference"], paired["mcnemar_p"]) == (0.0, 1.0)
    assert other["as_framed"]["accuracy"] == rows["as framed"]["accuracy"]  # margin unused
    unmargined_row = rows["margin 0.00, moved +0.00"]
    assert other["daemon_crop"]["accuracy"] == unmargined_row["accuracy"]
    difference = other["daemon_crop"]["paired"]["accuracy_difference"]
    expected = unmargined_row["accuracy"] - rows[DAEMON]["accuracy"]
    assert difference == pytest.approx(expected, abs=1e-3)
    low, high = other["daemon_crop"]["paired"]["ci95"]
    assert low <= difference <= high

    table = capsys.readouterr().out
    assert f"paired with {shipped}" in table
    assert table.count(f"{unmargined} ") == 2  # the daemon's crop and as framed


def test_faces_too_small_for_the_detector_are_refused_by_name(fer_zip: Path):
    # 16 px is below BlazeFace's reach: nothing is found, and nothing can be scored.
    with pytest.raises(SystemExit) as refused:
        main(["--data", str(fer_zip), "--limit", "3", "--face-side", "16"])
    assert "found none of the 9 faces pasted 16 px wide" in str(refused.value)
    assert "--face-side" in str(refused.value)
