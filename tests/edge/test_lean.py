"""Leaning faces: the detector reads the lean from the eyes, and a face leaning beyond what the
model learnt is turned level before it is classified (``classifier.straighten_faces``), on real
BlazeFace and the shipped model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.camera.base import Frame
from edge.classify.emotion import EmotionClassifier
from edge.detect import detect_faces, face_crops
from edge.detect.base import Face
from edge.detect.blazeface import (
    KEEP_TURN_SCORE,
    TURN_MARGIN,
    UNDO_TURN,
    BlazeFaceDetector,
    leaning_by,
    nearest_quarter_turn,
    surest_lean,
    turned_box,
)
from edge.models import default_bundle_path
from edge.preprocess import (
    STRAIGHTEN_BEYOND_DEGREES,
    crop,
    preprocess_face,
    straightening_turn,
    turned_crop,
)
from edge.samples import background, fer_faces, leaning_frame
from tests.support import analysing_app


@pytest.fixture(scope="module")
def faces(fer_zip: Path) -> list[np.ndarray]:
    picked = fer_faces(fer_zip, ["happy", "sad", "angry"], 4, seed=3)
    return [face for label in picked for face in picked[label]]


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


def leaning(face: np.ndarray, lean: float, side: int = 160) -> np.ndarray:
    return leaning_frame(background(np.random.default_rng(0)), face, lean, side)[0]


def test_a_small_lean_is_kept_and_a_larger_one_turned_level():
    assert STRAIGHTEN_BEYOND_DEGREES == 15
    assert [straightening_turn(roll) for roll in (0, 14.5, -15, 25, -40)] == [0, 0, 0, 25, -40]


def test_turned_crop_turns_counter_clockwise_about_the_box_centre():
    gray = np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)
    box = (30, 20, 40, 40)
    assert np.array_equal(turned_crop(gray, box, 0), crop(gray, box))
    quarter = turned_crop(gray, box, 90).astype(int)
    assert np.abs(quarter - np.rot90(crop(gray, box), k=1)).max() <= 1  # rot90 k=1: anticlockwise
    # Past the frame's edge the pixels are replicated, as crop() does.
    assert turned_crop(gray, (-20, -20, 40, 40), 30).shape == (40, 40)


@pytest.fixture(scope="module")
def sharp_face() -> np.ndarray:
    """scikit-image's astronaut photo (Eileen Collins, public domain), gray: a sharp face that
    leans about 4 degrees of itself."""
    from skimage import data

    return cv2.cvtColor(data.astronaut()[40:260, 140:320], cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("side", [120, 160, 240])
def test_blazeface_reads_a_sharp_face_lean_within_a_few_degrees(
    sharp_face: np.ndarray, detector: BlazeFaceDetector, side: int
):
    """Seen once in a 640x480 frame, a face this small is a few dozen input pixels wide and its
    eye keypoints wander (lean -30 read as +41 at 160 px); the second, closer look reads it."""
    reads = {}
    for lean in (-45, -30, -15, 0, 15, 30, 45):
        found = detector.detect(leaning(sharp_face, lean, side))
        if found:
            reads[lean] = found[0].roll - 4  # the photo's own lean
    assert len(reads) >= 6, reads  # BlazeFace may miss one face leaning 45 degrees
    assert all(abs(read - lean) < 9 for lean, read in reads.items()), reads


@pytest.mark.parametrize("lean", [-150, -90, 60, 90, 120, 180])
def test_blazeface_reads_a_face_lying_on_its_side_or_upside_down(
    sharp_face: np.ndarray, detector: BlazeFaceDetector, lean: int
):
    """Past about 60 degrees BlazeFace's eye keypoints stop following the lean (an upside-down
    face looks to them like an upright one); under the quarter turn that stands the face up
    they read it again, and BlazeFace is surest of it there."""
    (found,) = detector.detect(leaning(sharp_face, lean))
    assert abs(leaning_by(0, found.roll - 4 - lean)) < 9, found  # the photo leans 4 itself
    if abs(lean) >= 120:  # under no turn alone the eyes take the face for near upright
        side = 2 * max(found.box[2], found.box[3])
        frame = leaning(sharp_face, lean)
        unturned = detector._look_again(frame, found, side, detector.min_score)
        assert unturned is not None and abs(leaning_by(0, unturned.roll - found.roll)) > 45


def test_a_quarter_turned_box_is_where_the_turned_square_shows_it():
    square = np.zeros((90, 90), np.uint8)
    box = (10, 20, 30, 15)
    square[20:35, 10:40] = 255
    for turn, code in UNDO_TURN.items():
        ys, xs = np.nonzero(cv2.rotate(square, code))
        seen = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert turned_box(box, 90, turn) == seen, turn


def test_leans_and_quarter_turns_go_either_way_round():
    assert [nearest_quarter_turn(roll) for roll in (0, 44, 46, -46, -100, 170, -179)] == [
        0,
        0,
        90,
        270,
        270,
        180,
        180,
    ]
    assert [leaning_by(turn, roll) for turn, roll in ((0, 5), (90, -5), (270, 10), (180, 5))] == [
        5,
        85,
        -80,
        -175,
    ]
    assert leaning_by(180, 0) == 180


def test_the_surest_look_near_upright_gives_the_lean_and_the_first_turn_keeps_a_margin():
    def look(score: float, roll: float) -> Face:
        return Face((0, 0, 10, 10), score, roll)

    lying = {0: look(0.74, 60), 90: look(0.88, 3), 180: look(0.7, -74), 270: None}
    assert surest_lean(lying) == 93
    # A look that sees the face far from upright under its turn counts only if none sees it
    # near: here the surest (under 180) reads -80 there.
    assert surest_lean({0: look(0.6, 20), 180: look(0.9, -80)}) == 20
    assert surest_lean({0: look(0.6, 80), 180: look(0.9, -80)}) == 100
    close = {0: look(0.7, 30), 90: look(0.7 + TURN_MARGIN / 2, -55)}
    assert surest_lean(close) == 30  # the first turn's, unless another is clearly surer
    assert surest_lean(close, preferred=90) == 35
    assert surest_lean({0: None, 90: None}) == 0.0


def test_without_measuring_the_lean_every_roll_is_zero(sharp_face: np.ndarray):
    (found,) = BlazeFaceDetector(measure_lean=False).detect(leaning(sharp_face, 30))
    assert found.roll == 0


def test_blazeface_reads_how_far_a_face_leans_from_its_eyes(
    faces: list[np.ndarray], detector: BlazeFaceDetector
):
    turned = {lean: [] for lean in (-30, 30)}
    for face in faces:
        (upright,) = detector.detect(leaning(face, 0))  # a FER face leans of itself
        if abs(upright.roll) > 20:
            continue  # a head resting on a hand: 30 more would lay it on its side
        for lean, reads in turned.items():
            found = detector.detect(leaning(face, lean))
            if len(found) == 1:  # how often a leaning face is found is bench/lean.py's to say
                reads.append(found[0].roll - upright.roll)
    for lean, reads in turned.items():
        assert len(reads) >= len(faces) // 2
        assert abs(np.median(reads) - lean) < 5, (lean, reads)  # clockwise as seen is positive
        assert sum(abs(read - lean) > 15 for read in reads) <= 2, (lean, reads)


def test_the_lean_is_the_same_on_picamera2s_smaller_detection_image(
    sharp_face: np.ndarray, detector: BlazeFaceDetector
):
    image = leaning(sharp_face, 30)
    lores = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (320, 240))
    (full,) = detect_faces(detector, Frame(image))
    (scaled,) = detect_faces(detector, Frame(image, gray=lores, gray_scale=2.0))
    assert abs(full.roll - scaled.roll) < 5 and full.roll > 20, (full, scaled)


def test_a_straightened_crop_is_level(fer_zip: Path, detector: BlazeFaceDetector):
    """The crops themselves, shown to the detector as FER faces are shown (pasted upright): the
    straightened one is level, the one cut as the box lies leans as the face did. Each read
    is a few degrees off, and a crop's is read twice over, so the median takes 30 faces."""
    spec = load_bundle(default_bundle_path()).preprocess
    straightened: list[float] = []
    as_cut: list[float] = []
    picked = fer_faces(fer_zip, ["happy", "sad", "angry"], 10, seed=3)
    faces = [face for label in picked for face in picked[label]]
    for face in faces:
        found_upright = detector.detect(leaning(face, 0))
        if len(found_upright) != 1 or abs(found_upright[0].roll) > 20:
            continue  # leaning 35 more, it would lie on its side
        frame = leaning(face, 35)
        found = detector.detect(frame)[:1]
        if not found:
            continue
        for straighten, leans in ((True, straightened), (False, as_cut)):
            crop_frame = leaning(face_crops(frame, spec, found, straighten)[0, :, :, 0], 0)
            again = detector.detect(crop_frame)[:1]
            leans.extend(a.roll - (0 if straighten else found[0].roll) for a in again)
    assert len(straightened) >= len(faces) // 2 and len(as_cut) >= len(faces) // 2
    assert abs(np.median(as_cut)) < 5, as_cut
    assert abs(np.median(straightened)) < 5, straightened


def test_a_face_without_a_lean_is_cropped_as_before():
    # Haar finds no eyes (roll 0): its crops, and those of any face within the lean kept, are
    # the plain crop, pixel for pixel.
    gray = np.random.default_rng(1).integers(0, 256, (240, 320), dtype=np.uint8)
    spec = load_bundle(default_bundle_path()).preprocess
    box = (100, 60, 90, 100)
    plain = preprocess_face(gray, spec, box)
    for face in (Face(box, 1.0), Face(box, 0.9, roll=-STRAIGHTEN_BEYOND_DEGREES)):
        assert np.array_equal(face_crops(gray, spec, [face])[0], plain)
    assert not np.array_equal(face_crops(gray, spec, [Face(box, 0.9, roll=25.0)])[0], plain)


@pytest.mark.parametrize("straighten", [True, False])
@pytest.mark.parametrize("lean", [35, 90])  # a head on one side; someone lying on the sofa
def test_the_daemon_classifies_the_crop_its_setting_asks_for(
    sharp_face: np.ndarray, detector: BlazeFaceDetector, tmp_path: Path, straighten: bool, lean: int
):
    frame = leaning(sharp_face, lean)
    app = analysing_app(tmp_path, {"straighten_faces": straighten})
    (track,) = app.analyse(Frame(frame)).tracks
    classifier: EmotionClassifier = app.classifier
    found = detector.detect(frame)[:1]
    expected = {
        on: classifier.probabilities(face_crops(frame, classifier.spec, found, on))[0]
        for on in (True, False)
    }
    assert not np.allclose(expected[True], expected[False])  # the two crops read differently
    assert np.allclose(track.scores, expected[straighten], atol=1e-6)
    assert (track.roll > 20) == straighten, track  # the live view leans the box with the crop
    if straighten:
        assert abs(track.roll - 4 - lean) < 9, track  # the photo leans 4 of itself


def rolls_in_video(detector: BlazeFaceDetector, frames: list[np.ndarray]) -> list[float]:
    return [round(face.roll) for frame in frames for face in detector.detect_in_video(frame)[:1]]


def test_in_a_video_a_face_lean_is_read_every_nth_frame_and_kept_between(sharp_face: np.ndarray):
    """The second look costs as much as the first; a still head's lean is read again only every
    ``lean_every`` frames. Here the head flips from leaning +30 to -30 degrees in place (at 240
    px, where one look over the frame finds it and no tiles are looked at)."""
    right, left = leaning(sharp_face, 30, 240), leaning(sharp_face, -30, 240)
    detector = BlazeFaceDetector(lean_every=3)
    runs = count_runs(detector)
    rolls = rolls_in_video(detector, [right, left, left, left, left])
    assert [roll > 20 for roll in rolls] == [True, True, True, False, False], rolls
    assert rolls[3] < -20, rolls
    assert len(runs) == 5 + 2  # five first looks, second looks on frames 1 and 4 only
    # A still image given to detect() in between is looked at twice and leaves the video as is.
    (alone,) = detector.detect(right)
    assert alone.roll > 20 and len(runs) == 7 + 2
    assert rolls_in_video(detector, [right]) == rolls[-1:]  # still the remembered -30


def test_in_a_video_a_face_that_moved_is_looked_at_again(sharp_face: np.ndarray):
    moved = np.roll(leaning(sharp_face, -30), 200, axis=1)
    detector = BlazeFaceDetector(lean_every=10)
    rolls = rolls_in_video(detector, [leaning(sharp_face, 30), moved])
    assert rolls[0] > 20 and rolls[1] < -20, rolls


def test_lean_every_one_reads_every_video_frame(sharp_face: np.ndarray):
    detector = BlazeFaceDetector(lean_every=1)
    rolls = rolls_in_video(detector, [leaning(sharp_face, 30), leaning(sharp_face, -30)])
    assert rolls[0] > 20 and rolls[1] < -20, rolls
    with pytest.raises(ValueError, match="lean_every"):
        BlazeFaceDetector(lean_every=0)


def test_in_a_video_a_lying_face_is_looked_at_under_its_own_turn(sharp_face: np.ndarray):
    """A fresh face's lean is read under each quarter turn unless it is clearly upright; once
    read, the next read looks under the turn it was found at first, and only there while the
    face still lies so. A person who sits up in place is read again under every turn."""
    upright = leaning(sharp_face, 0, 240)
    (face,) = BlazeFaceDetector().detect(upright)
    centre = (face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2)
    turn = cv2.getRotationMatrix2D(centre, -90, 1.0)  # clockwise: a lean of +90
    lying = cv2.warpAffine(upright, turn, upright.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    detector = BlazeFaceDetector(lean_every=2)
    runs = count_runs(detector)
    rolls = rolls_in_video(detector, [lying, lying, lying])
    assert all(abs(roll - 94) < 9 for roll in rolls), rolls
    # Three first looks; closer ones under each turn on frame 1, under its own on frame 3.
    assert len(runs) == 3 + 4 + 1
    rolls = rolls_in_video(detector, [upright] * 4)
    assert abs(rolls[0] - 94) < 9, rolls  # kept from frame 3 until the next read
    assert all(abs(roll - 4) < 9 for roll in rolls[1:]), rolls
    # On frame 5, under the lying face's turn the upright one is not seen sure and upright: the
    # three other turns are looked under too; on frame 7 under no turn alone.
    assert len(runs) == 8 + 1 + (1 + 1 + 3) + 1 + (1 + 1)


def test_a_clearly_upright_face_is_read_in_one_closer_look(sharp_face: np.ndarray):
    detector = BlazeFaceDetector()
    runs = count_runs(detector)
    (found,) = detector.detect(leaning(sharp_face, 0, 240))
    assert len(runs) == 2 and abs(found.roll - 4) < 9
    assert KEEP_TURN_SCORE == 0.8  # the look scored 0.9 here


def count_runs(detector: BlazeFaceDetector) -> list[None]:
    """Notes each BlazeFace inference (one per look) in the list returned."""
    runs: list[None] = []
    run = detector.model.run

    def counted(*args: object) -> list[np.ndarray]:
        runs.append(None)
        return run(*args)

    detector.model.run = counted  # type: ignore[method-assign]
    return runs


def test_the_daemon_reads_a_lean_every_fifth_frame(sharp_face: np.ndarray, tmp_path: Path):
    from edge.detect.blazeface import LEAN_EVERY_FRAMES

    app = analysing_app(tmp_path)
    assert isinstance(app.detector, BlazeFaceDetector) and LEAN_EVERY_FRAMES == 5
    runs = count_runs(app.detector)
    for _ in range(10):
        app.analyse(Frame(leaning(sharp_face, 30, 240)))
    assert len(runs) == 10 + 2  # a look over each frame, a closer one at frames 1 and 6


def leftmost_corner_y(roll: float) -> float:
    """How far below the box's centre the leftmost pixels of a face box drawn leaning ``roll``
    lie (the label's tab, drawn from the box's left edge rightwards, is never leftmost)."""
    from edge.overlay import COLOURS, draw_face

    canvas = np.zeros((480, 640, 3), np.uint8)
    box = (240, 160, 160, 160)
    draw_face(canvas, box, "happy", 0.9, roll)
    ys, xs = np.nonzero(np.all(canvas == COLOURS["happy"], axis=2))
    return float(ys[xs == xs.min()].mean()) - (box[1] + box[3] / 2)


def test_the_live_view_draws_a_straightened_face_box_leaning_as_its_crop_was_cut():
    # Clockwise as seen (positive roll): the left edge swings down, its lower corner leftmost;
    # anticlockwise, the upper one. Within 15 degrees the box stands upright.
    assert 20 < leftmost_corner_y(30) < 40
    assert -40 < leftmost_corner_y(-30) < -20
    assert abs(leftmost_corner_y(10)) < 2 and abs(leftmost_corner_y(0)) < 2


def test_classify_annotate_leans_a_straightened_face_box(sharp_face: np.ndarray, tmp_path: Path):
    import json

    from edge.overlay import COLOURS, OTHER_COLOUR
    from tests.edge.test_sources_and_cli import run_edge

    cv2.imwrite(str(tmp_path / "leaning.png"), leaning(sharp_face, 30, 200))
    result = run_edge(
        "classify", "--annotate", str(tmp_path / "out"), str(tmp_path / "leaning.png")
    )
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    (face,) = record["faces"]
    x, y, w, h = face["box"]
    colour = COLOURS.get(face["label"], OTHER_COLOUR)
    picture = cv2.imread(record["annotated"]).astype(int)
    drawn = np.abs(picture - colour).max(axis=2) < 40  # JPEG-close to the label's colour
    ys, xs = np.nonzero(drawn[:, : x + w // 2])
    # Leaning clockwise, the box's lowest left corner is its leftmost point, beyond the box.
    assert xs.min() < x - 10 and ys[xs == xs.min()].mean() > y + h / 2 + 10, (xs.min(), x)
