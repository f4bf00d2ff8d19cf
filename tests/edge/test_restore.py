"""The daemon's side of `yuzug-deploy restore`: state files staged in <state>/restore are moved
into place as it starts, what was there kept in <state>/before-restore."""

from __future__ import annotations

from pathlib import Path

from edge.restore import apply_staged_restore


def test_staged_files_replace_the_state_and_the_old_ones_are_kept(tmp_path: Path):
    state = tmp_path / "state"
    (state / "restore").mkdir(parents=True)
    (state / "personal.json").write_text("the wiped device's")
    (state / "mood-diary.json").write_text("kept as it is: not in the backup")
    (state / "restore" / "personal.json").write_text("the backup's")
    (state / "restore" / "dismissed-suggestions.json").write_text("the backup's too")
    (state / "restore" / "elsewhere").symlink_to(tmp_path / "outside")  # not a file of ours

    assert apply_staged_restore(state) == ["dismissed-suggestions.json", "personal.json"]
    assert (state / "personal.json").read_text() == "the backup's"
    assert (state / "dismissed-suggestions.json").read_text() == "the backup's too"
    assert (state / "mood-diary.json").read_text() == "kept as it is: not in the backup"
    assert (state / "before-restore" / "personal.json").read_text() == "the wiped device's"
    assert not (state / "restore").exists() and not (state / "elsewhere").exists()
    assert apply_staged_restore(state) == []  # nothing staged: nothing moves
    assert (state / "before-restore" / "personal.json").exists()


def test_nothing_is_done_without_a_staged_folder(tmp_path: Path):
    (tmp_path / "personal.json").write_text("mine")
    assert apply_staged_restore(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["personal.json"]
