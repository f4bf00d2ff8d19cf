"""The mood diary: time per reported emotion per local day, kept on disk within bounds."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from edge.diary import SAVE_SECONDS, MoodDiary

DAY = date(2026, 11, 28)


def test_time_is_counted_to_the_emotion_reported_and_not_while_nobody_is_there():
    diary = MoodDiary(None, keep_days=7)
    script = ["happy"] * 31 + ["no_face"] * 20 + ["sad"] * 11  # a note every 0.1 s
    for tenth, emotion in enumerate(script):
        diary.note(100 + tenth / 10, DAY, emotion)
    today = diary.day(DAY)
    # Each interval between two notes goes to the emotion reported at its start: the 31st
    # happy note's interval is happy, the last sad note's has not ended yet.
    assert today["seconds"] == {"happy": 3.1, "sad": 1.0}, today
    assert today["seen_seconds"] == 4.1
    assert today["shares"] == {"happy": round(3.1 / 4.1, 4), "sad": round(1.0 / 4.1, 4)}
    diary.note(200.0, DAY, "paused")  # after a stalled loop: the gap is not counted
    diary.note(200.5, DAY, "happy")  # the privacy switch's time is not counted either
    assert diary.day(DAY)["seen_seconds"] == 4.1
    # A new local day starts from nothing; the days before stay as they were.
    diary.note(201.0, DAY + timedelta(days=1), "sad")
    days = diary.days(DAY + timedelta(days=1), 3)
    assert [d["date"] for d in days] == ["2026-11-27", "2026-11-28", "2026-11-29"]
    assert [d["seen_seconds"] for d in days] == [0, 4.1, 0.5]
    assert days[0]["shares"] == {}


def test_the_diary_survives_a_restart_and_keeps_only_its_days(tmp_path: Path):
    path = tmp_path / "state" / "mood-diary.json"
    diary = MoodDiary(path, keep_days=3)
    for day_back in range(5, -1, -1):  # six days of one happy second each
        day = DAY - timedelta(days=day_back)
        diary.note(0.0, day, "happy")
        diary.note(1.0, day, "happy")
    diary.maybe_save(10.0, DAY)
    assert not path.exists()  # less than SAVE_SECONDS since it started: not yet
    diary.maybe_save(SAVE_SECONDS + 1, DAY)
    kept = json.loads(path.read_text())
    assert sorted(kept["days"]) == ["2026-11-26", "2026-11-27", "2026-11-28"]
    again = MoodDiary(path, keep_days=3)
    assert again.day(DAY)["seconds"] == {"happy": 1.0}
    again.note(0.0, DAY, "sad")
    again.note(2.0, DAY, "sad")
    again.maybe_save(1.0, DAY, force=True)  # at shutdown: whatever the time
    assert MoodDiary(path, keep_days=3).day(DAY)["seconds"] == {"happy": 1.0, "sad": 2.0}


def test_a_damaged_diary_is_set_aside_and_a_new_one_started(tmp_path: Path, caplog):
    path = tmp_path / "mood-diary.json"
    for damaged in (
        '{"days": [1]}',
        '{"days": {"not a date": {}}}',
        "{",
        '{"days": {"2026-11-28": {"happy": "x"}}}',
    ):
        path.write_text(damaged)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            diary = MoodDiary(path, keep_days=3)
        assert diary.day(DAY)["seen_seconds"] == 0
        assert "starting a new one" in caplog.text, damaged
        assert (tmp_path / "mood-diary.json.damaged").read_text() == damaged
        assert not path.exists()
    diary.note(0.0, DAY, "happy")
    diary.note(1.0, DAY, "happy")
    diary.maybe_save(0.0, DAY, force=True)
    assert MoodDiary(path, keep_days=3).day(DAY)["seconds"] == {"happy": 1.0}


def test_a_disk_that_cannot_be_written_is_logged_and_tried_again(tmp_path: Path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    diary = MoodDiary(blocker / "mood-diary.json", keep_days=3)
    diary.note(0.0, DAY, "happy")
    diary.note(1.0, DAY, "happy")
    with caplog.at_level(logging.WARNING):
        diary.maybe_save(0.0, DAY, force=True)
    assert "mood diary: cannot write" in caplog.text
    assert diary.day(DAY)["seconds"] == {"happy": 1.0}  # kept in memory all the same


def test_the_diary_command_draws_each_day_and_says_what_is_wrong_with_a_file(tmp_path: Path):
    today = date.today()
    yesterday = (today - timedelta(days=1)).isoformat()
    path = tmp_path / "mood-diary.json"
    MoodDiary(path, keep_days=7)  # nothing yet: no file
    days = {yesterday: {"happy": 1800.0, "sad": 600.0}, today.isoformat(): {"angry": 45.0}}
    path.write_text(json.dumps({"schema": 1, "days": days}))

    def diary(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge", "diary", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = diary("--file", str(path), "--days", "3")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 3 and lines[0].endswith("." * 30)  # a day without a face
    assert " 40 min  " + "h" * 22 + "s" * 8 + "  happy 75% · sad 25%" in lines[1], lines[1]
    assert lines[2].startswith(f"{today:%a %Y-%m-%d}") and "  45 s  " + "a" * 30 in lines[2]
    as_json = [
        json.loads(line) for line in diary("--file", str(path), "--json").stdout.split("\n") if line
    ]
    assert len(as_json) == 14 and as_json[-1]["seconds"] == {"angry": 45.0}
    path.write_text('{"days": [1]}')
    damaged = diary("--file", str(path))
    assert damaged.returncode == 2 and "cannot read the mood diary" in damaged.stderr
    assert path.exists()  # looked at, not set aside: that is the daemon's to do
    missing = diary("--file", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "no mood diary at" in missing.stderr
    assert "Traceback" not in damaged.stderr + missing.stderr
