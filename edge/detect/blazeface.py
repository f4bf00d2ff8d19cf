"""MediaPipe BlazeFace short-range in LiteRT: the default detector (about 2 ms per 640x480 frame).

The model ships in the package (``edge/data``, Apache-2.0), so a Pi needs no download. Its
outputs are raw: 896 anchor regressions and logits, decoded here with MediaPipe's anchor layout
(strides 8/16/16/16 on a 128x128 input, 2 and 6 anchors per cell) and greedy NMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from edge.bundle import sha256_file
from edge.classify.interpreter import TFLiteModel
from edge.detect.base import Face, FaceDetector, eye_line_roll, iou, non_max_suppression
from edge.errors import BundleError
from edge.preprocess import Box

MODEL_PATH = Path(__file__).resolve().parent.parent / "data" / "face_detection_short_range.tflite"
MODEL_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"
INPUT_SIZE = 128
# MediaPipe's SSD anchor layout for this model: (stride, anchors per cell).
ANCHOR_LAYOUT = ((8, 2), (16, 6))
# How much a face's box must overlap last frame's to be taken for the same face, whose lean
# is then remembered (``lean_every``); a face that moved further is looked at again.
LEAN_MEMORY_OVERLAP = 0.5
# Take the second look at a face in a video on every fifth frame (6 times a second at 30 fps):
# the daemon's detection of one face took 1.65 ms a frame against 2.89 with a second look at
# every frame (1.34 without any), bench/pipeline.py --lean-every.
LEAN_EVERY_FRAMES = 5
# The tile pass's squares, as a share of the frame's shorter side. BlazeFace finds a face once
# it is about a sixth of its input: square tiles of 0.6 find 90% of faces 64 px wide in a
# 640x480 frame, where 4 tiles of 60% of each side (letterboxed, so seen at 384 px) found 41%
# (bench/reach.py).
TILE_FRACTION = 0.6
# Neighbouring tiles share at least this share of their side, so that a face up to a third of a
# tile wide lies whole in one of them.
TILE_OVERLAP = 1 / 3
# In a video, a face the tile pass found is followed on the next frames by one look at a
# square around where it was (2 passes a frame instead of 7 in 640x480); every fifteenth frame
# (twice a second at 30 fps) all tiles are searched again, for faces that came since.
TILE_RESCAN_FRAMES = 15
# The followed square is this many times the face's side (at most a tile): the face a quarter
# of BlazeFace's input, surely found, with room to move one and a half widths either way.
FOLLOW_SCALE = 4
# A face under half a tile wide that the tiles find is kept only if a closer look, at a square
# twice its size around it (the face half of the input), finds it again at least this sure.
# Small round textures fool BlazeFace more than faces do: on 22 photos with nobody in them
# (scikit-image's), the six tiles reported 18 faces the one pass did not, 11 of them kept (the
# four tiles before them reported 9); of 283 test faces they found 48-80 px wide, 98.9% were
# kept. 0.6 would keep 4 of the 18, but find fewer leaning faces (91% of those 120-160 px wide
# leaning 30-45 degrees, against 96% at 0.5).
TILE_CONFIRM_SCORE = 0.5
# Past about 60 degrees BlazeFace's eye keypoints stop following the lean: a face lying on its
# side (someone on a sofa) read within 20 degrees of its lean 35 times in 100, one upside down
# never. Under the quarter turn that stands it up the closer look reads it as well as an
# upright one (83-88 in 100 at every lean; the rest is mostly FER's faces' own lean), and
# BlazeFace is surest of the face under that turn (bench/lean.py). So a lean is read first under
# one turn (none, or the one nearest the lean read before for this face in a video), and under
# the others too unless the face was found there at least KEEP_TURN_SCORE sure and within
# KEEP_TURN_DEGREES of upright: 30-42 in 100 faces leaning up to 30 degrees take the other
# looks, 96 or more of those leaning 60 or more.
QUARTER_TURNS = (0, 90, 180, 270)  # clockwise leans each look undoes
KEEP_TURN_SCORE = 0.8
KEEP_TURN_DEGREES = 45.0
# Then the surest look's lean is taken, among the looks that see the face within
# TURN_SEEN_DEGREES of upright, the first turn's kept unless another look is surer by
# TURN_MARGIN: with neither, 0.4-1.8 points fewer of 450 faces leaning 15-45 degrees read right
# for 0.2 more lying ones.
TURN_SEEN_DEGREES = 60.0
TURN_MARGIN = 0.05


@dataclass(frozen=True)
class _Remembered:
    face: Face  # as last reported, with the lean read for it
    age: int  # frames since the second look that read that lean


@lru_cache(maxsize=1)
def anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1], in the model's output order."""
    centres = []
    for stride, per_cell in ANCHOR_LAYOUT:
        cells = INPUT_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.array(centres, np.float32)


def tile_squares(height: int, width: int, fraction: float) -> list[tuple[int, int, int]]:
    """``(left, top, side)`` of the square tiles that cover a frame: ``fraction`` of its shorter
    side each, evenly spaced, neighbours overlapping by at least ``TILE_OVERLAP`` of a side."""
    side = max(1, round(fraction * min(height, width)))
    step = side * (1 - TILE_OVERLAP)

    def starts(length: int) -> list[int]:
        count = math.ceil((length - side) / step) + 1 if length > side else 1
        return np.linspace(0, length - side, count).round().astype(int).tolist()

    return [(left, top, side) for top in starts(height) for left in starts(width)]


def square_around(box: Box, side: int, height: int, width: int) -> tuple[int, int, int]:
    """``(left, top, side)`` of the square of ``side`` centred on ``box``, moved inside the
    frame (``side`` is at most the frame's shorter side)."""
    x, y, w, h = box
    left = min(max(0, round(x + w / 2 - side / 2)), width - side)
    top = min(max(0, round(y + h / 2 - side / 2)), height - side)
    return left, top, side


# cv2.rotate codes that turn a square back by each clockwise quarter turn of QUARTER_TURNS.
UNDO_TURN = {
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


def turned_box(box: Box, side: int, turn: int) -> Box:
    """Where ``box`` in a square of ``side`` lies once the square is turned back
    (anticlockwise) by the clockwise quarter ``turn`` (90, 180 or 270)."""
    x, y, w, h = box
    if turn == 90:
        return y, side - x - w, h, w
    if turn == 180:
        return side - x - w, side - y - h, w, h
    return side - y - h, x, h, w


def nearest_quarter_turn(roll: float) -> int:
    """The clockwise quarter turn (0, 90, 180 or 270) nearest a lean of ``roll`` degrees."""
    return round(roll / 90) % 4 * 90


def surest_lean(looks: dict[int, Face | None], preferred: int = 0) -> float:
    """The lean read by the surest of the looks under each quarter turn, among those that see
    the face within :data:`TURN_SEEN_DEGREES` of upright if any do, the ``preferred`` turn's
    taken unless another is surer by :data:`TURN_MARGIN`; 0 without any look."""
    seen = [(turn, look) for turn, look in looks.items() if look is not None]
    near_upright = [(turn, look) for turn, look in seen if abs(look.roll) <= TURN_SEEN_DEGREES]
    candidates = near_upright or seen
    if not candidates:
        return 0.0
    turn, look = max(
        candidates, key=lambda pair: pair[1].score + (TURN_MARGIN if pair[0] == preferred else 0)
    )
    return leaning_by(turn, look.roll)


def leaning_by(turn: int, roll: float) -> float:
    """The lean, in (-180, 180], of a face seen leaning ``roll`` once turned back by ``turn``."""
    lean = (turn + roll) % 360
    return lean - 360 if lean > 180 else lean


class BlazeFaceDetector(FaceDetector):
    """Face detection with MediaPipe BlazeFace short-range.

    MediaPipe's full-range model was tried too: on FER faces pasted into 640x480 frames it
    found fewer faces (82% against 99.5% at 240 px) at 3x the cost, so it is not shipped.

    Args:
        min_score: detection confidence threshold.
        iou_threshold: NMS overlap above which the weaker box is dropped.
        min_size: smallest face side, in frame pixels, that is reported.
        num_threads: interpreter threads.
        model_path: another ``.tflite`` with the same tensors.
        tiles: when the whole frame shows no face, look again in overlapping square tiles
            (:func:`tile_squares`; six in a 640x480 frame, about 6x the cost, on frames with
            no face near enough for one pass only) to find faces too far for one pass; each
            face they find is confirmed by a closer look (``confirm_score``).
        tile_fraction: the tiles' side as a share of the frame's shorter side: smaller tiles
            find smaller faces, and more tiles cost more (0.45: twelve in 640x480).
        confirm_score: how sure the closer look at a small face the tiles found must be to
            keep it (higher drops textures and true far or leaning faces alike;
            ``bench/reach.py --confirm-score``).
        measure_lean: read each face's :attr:`~edge.detect.base.Face.roll` from a closer look
            at a square twice its size (one more pass a face, none for one the tile pass
            already saw in a square at most that size; three more, under the other quarter
            turns, :data:`QUARTER_TURNS`, for a face not clearly upright to it). In one pass
            over a 640x480 frame a face is a few dozen input pixels wide and its eye keypoints
            wander by tens of degrees; seen larger they fall within a few degrees of the true
            lean, and under the turn that stands it up, so do a lying face's
            (``bench/lean.py``). Off, every roll is 0.
        lean_every: in a video (:meth:`detect_in_video`), take that second look at a face on
            every ``lean_every``-th frame only and keep the lean it read on the frames between,
            for the face found where it was (box overlap above 0.5): a head's lean changes far
            slower than frames come, and the second look costs as much as the first. 1 looks
            on every frame; :meth:`detect`, for unrelated still images, always does.
    """

    name = "blazeface"

    def __init__(
        self,
        min_score: float = 0.4,
        iou_threshold: float = 0.3,
        min_size: int = 20,
        num_threads: int = 1,
        model_path: str | Path | None = None,
        tiles: bool = True,
        tile_fraction: float = TILE_FRACTION,
        confirm_score: float = TILE_CONFIRM_SCORE,
        measure_lean: bool = True,
        lean_every: int = LEAN_EVERY_FRAMES,
    ) -> None:
        if lean_every < 1:
            raise ValueError(f"lean_every must be 1 or more, not {lean_every}")
        if not 0 < tile_fraction <= 1:
            raise ValueError(f"tile_fraction must be above 0 and at most 1, not {tile_fraction}")
        if not 0 < confirm_score < 1:
            raise ValueError(f"confirm_score must be between 0 and 1, not {confirm_score}")
        path = Path(model_path) if model_path else MODEL_PATH
        if not path.is_file():
            raise BundleError(f"BlazeFace model {path} is missing; reinstall yuzug[edge]")
        if model_path is None and sha256_file(path) != MODEL_SHA256:
            raise BundleError(f"{path}: the packaged BlazeFace model is corrupt; reinstall yuzug")
        self.model = TFLiteModel(path, num_threads=num_threads)
        size, count = INPUT_SIZE, len(anchors())
        shapes = (
            [list(i.contract.shape) for i in self.model.inputs],
            sorted(list(o.contract.shape) for o in self.model.outputs),
        )
        if shapes != ([[1, size, size, 3]], [[1, count, 1], [1, count, 16]]):
            raise BundleError(f"{path}: not a BlazeFace short-range model (tensors {shapes})")
        self._scores_first = self.model.outputs[0].contract.shape[-1] == 1
        self._anchors = anchors()
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.min_size = min_size
        self.tiles = tiles
        self.tile_fraction = tile_fraction
        self.confirm_score = confirm_score
        self.measure_lean = measure_lean
        self.lean_every = lean_every
        self._remembered: list[_Remembered] = []  # the last video frame's faces
        self._followed: list[Face] = []  # the last video frame's faces from the tile pass
        self._frames_since_tile_scan = 0
        self._logit_threshold = float(np.log(min_score / (1 - min_score)))

    def detect(self, frame: np.ndarray) -> list[Face]:
        faces, read_close = self._detect_frame(frame)
        if not self.measure_lean:
            return [replace(face, roll=0.0) for face in faces]
        return [replace(face, roll=self._lean(frame, face, read_close)) for face in faces]

    def detect_in_video(self, frame: np.ndarray) -> list[Face]:
        faces, read_close = self._detect_frame(frame, follow=True)
        if not self.measure_lean:
            return [replace(face, roll=0.0) for face in faces]
        remembered = [self._remember(frame, face, read_close) for face in faces]
        self._remembered = remembered
        return [entry.face for entry in remembered]

    def _remember(self, frame: np.ndarray, face: Face, read_close: set[Box]) -> _Remembered:
        """The face with the lean read for it on an earlier frame, if it was found there and
        that read is younger than ``lean_every`` frames; else with a fresh read (free when this
        frame's search already saw the face close, ``read_close``), which looks first under the
        quarter turn of the lean read before for the face found where it was."""
        known = max(self._remembered, key=lambda entry: iou(entry.face.box, face.box), default=None)
        if known is None or iou(known.face.box, face.box) <= LEAN_MEMORY_OVERLAP:
            return _Remembered(replace(face, roll=self._lean(frame, face, read_close)), 0)
        if face.box not in read_close and known.age + 1 < self.lean_every:
            return _Remembered(replace(face, roll=known.face.roll), known.age + 1)
        lean = self._lean(frame, face, read_close, known.face.roll)
        return _Remembered(replace(face, roll=lean), 0)

    def _lean(
        self, frame: np.ndarray, face: Face, read_close: set[Box], before: float | None = None
    ) -> float:
        """The face's roll read again at a larger scale, in a square twice its size around it:
        under no quarter turn, or the one nearest the lean read ``before`` for this face, and
        that read stands if the look is sure of a face near upright there
        (:data:`KEEP_TURN_SCORE`, :data:`KEEP_TURN_DEGREES`); else under every one of
        :data:`QUARTER_TURNS` too, the surest look's (:func:`surest_lean`). 0 (no turn) when
        no look finds the face. A face in ``read_close`` (the tile pass found or confirmed it in
        a square at most twice its size), or one too large for a closer square, counts as its
        own look under no turn."""
        side = 2 * max(face.box[2], face.box[3])
        looks: dict[int, Face | None] = {}
        if face.box in read_close or side >= max(frame.shape[:2]):
            looks[0] = face  # the first look saw it as large as a second would
        first = 0 if before is None else nearest_quarter_turn(before)
        if first not in looks:
            looks[first] = self._look_again(frame, face, side, self.min_score, first)
        upright = looks[first]
        if upright is not None and upright.score >= KEEP_TURN_SCORE:
            if abs(upright.roll) <= KEEP_TURN_DEGREES:
                return leaning_by(first, upright.roll)
        for turn in QUARTER_TURNS:
            if turn not in looks:
                looks[turn] = self._look_again(frame, face, side, self.min_score, turn)
        return surest_lean(looks, first)

    def _detect_frame(self, frame: np.ndarray, follow: bool = False) -> tuple[list[Face], set[Box]]:
        """The faces one pass over the whole frame finds, else the tile pass's, with the boxes
        of those the tile pass saw close enough to read their lean (:meth:`_confirmed`).
        ``follow`` (frames of one video): look first where the tile pass found faces on the
        frame before."""
        if min(frame.shape[:2]) < self.min_size:
            return [], set()  # no face of min_size fits (and a 1-pixel tile would be empty)
        faces = self._detect_region(frame)
        if faces or not self.tiles:
            if follow:
                self._followed = []
            return faces, set()
        # Nothing at full-frame scale: faces far from the camera are too small for a 128 px
        # input. Look again in overlapping square tiles, each seen at a larger scale (square, so
        # that letterboxing shrinks no tile further than its side).
        height, width = frame.shape[:2]
        tiles = tile_squares(height, width, self.tile_fraction)
        tile_side = tiles[0][2]
        known = self._followed if follow else []  # confirmed on the frame before
        read_close: set[Box] = set()
        if follow and self._followed and self._frames_since_tile_scan + 1 < TILE_RESCAN_FRAMES:
            self._frames_since_tile_scan += 1
            around = [
                square_around(
                    face.box, min(tile_side, FOLLOW_SCALE * max(face.box[2:])), height, width
                )
                for face in self._followed
            ]
            found = self._detect_squares(frame, around)
            faces, read_close = self._confirmed(frame, found, known, tile_side)
        if not faces:  # nothing followed, lost, or time to search all tiles again
            found = self._detect_squares(frame, tiles)
            faces, read_close = self._confirmed(frame, found, known, tile_side)
            if follow:
                self._frames_since_tile_scan = 0
        if follow:
            self._followed = faces
        return faces, read_close

    def _detect_squares(self, frame: np.ndarray, squares: list[tuple[int, int, int]]) -> list[Face]:
        """The faces found in each ``(left, top, side)`` square, in frame pixels, merged."""
        faces = [face for square in squares for face in self._detect_in_square(frame, *square)]
        return non_max_suppression(faces, self.iou_threshold)

    def _detect_in_square(self, frame: np.ndarray, left: int, top: int, side: int) -> list[Face]:
        """The faces one pass finds in the square at ``(left, top)``, in frame pixels."""
        return [
            replace(face, box=(face.box[0] + left, face.box[1] + top, *face.box[2:]))
            for face in self._detect_region(frame[top : top + side, left : left + side])
        ]

    def _confirmed(
        self, frame: np.ndarray, found: list[Face], known: list[Face], tile_side: int
    ) -> tuple[list[Face], set[Box]]:
        """The tile pass's faces, each as a second look sees it, and the boxes of those seen
        in a square at most twice their size, so that their roll is read as :meth:`_lean`
        would read it.

        A face under half a tile wide is looked at closer, in a square twice its size around
        it, and kept only if found there at least ``confirm_score`` sure. A larger one is
        looked at in a tile-sized square centred on it (a tile may have cut it), and kept as
        found if that look misses it (a tile is at most twice its size too). A face
        overlapping one kept on the frame before (``known``) is kept as found, without another
        look; it was found in a square up to ``FOLLOW_SCALE`` times its size."""
        confirm_score = max(self.min_score, self.confirm_score)
        kept, looked_at = [], []
        for face in found:
            size = max(face.box[2], face.box[3])
            if any(iou(face.box, other.box) > LEAN_MEMORY_OVERLAP for other in known):
                kept.append(face)
            elif 2 * size < tile_side:
                closer = self._look_again(frame, face, 2 * size, confirm_score)
                if closer is not None:
                    looked_at.append(closer)
            else:
                looked_at.append(self._look_again(frame, face, tile_side, self.min_score) or face)
        faces = non_max_suppression(kept + looked_at, self.iou_threshold)
        return faces, {face.box for face in faces if face in looked_at}

    def _look_again(
        self, frame: np.ndarray, face: Face, side: int, min_score: float, turn: int = 0
    ) -> Face | None:
        """``face`` as BlazeFace finds it in a square of ``side`` centred on it (clamped to the
        frame), at least ``min_score`` sure; else None. With ``turn``, one of
        :data:`QUARTER_TURNS`, the square is first turned back (anticlockwise) by that much:
        the face found has its box in the frame, and its roll as it leans in the turned
        square."""
        height, width = frame.shape[:2]
        left, top, side = square_around(face.box, min(side, height, width), height, width)
        if turn:
            square = cv2.rotate(frame[top : top + side, left : left + side], UNDO_TURN[turn])
            x, y, w, h = face.box
            target = turned_box((x - left, y - top, w, h), side, turn)
            found = [
                (replace(look, box=face.box), iou(look.box, target))
                for look in self._detect_region(square)
            ]
        else:
            found = [
                (look, iou(look.box, face.box))
                for look in self._detect_in_square(frame, left, top, side)
            ]
        best, best_overlap = None, self.iou_threshold
        for look, overlap in found:
            if overlap > best_overlap and look.score >= min_score:
                best, best_overlap = look, overlap
        return best

    def _detect_region(self, frame: np.ndarray) -> list[Face]:
        height, width = frame.shape[:2]
        side = max(height, width)
        size = INPUT_SIZE
        # Letterbox into a square so faces keep their aspect ratio, as MediaPipe does.
        outputs = self.model.run(self._input(frame, size))
        scores_raw, boxes_raw = outputs if self._scores_first else outputs[::-1]
        logits = scores_raw[0, :, 0]
        candidates = np.flatnonzero(logits > self._logit_threshold)
        if not candidates.size:
            return []
        regress = boxes_raw[0, candidates] / size
        centres = self._anchors[candidates] + regress[:, :2]
        sizes = regress[:, 2:4]
        # Then six keypoints (x, y), the person's right eye and left eye first. The line between
        # the eyes leans as much in the letterboxed input as in the frame (one scale for both
        # axes), and the anchor cancels out of it.
        eyes = regress[:, 4:8].reshape(-1, 2, 2)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[candidates], -80, 80)))
        faces = []
        for (cx, cy), (w, h), (right_eye, left_eye), score in zip(
            centres, sizes, eyes, scores, strict=True
        ):
            box_w, box_h = w * side, h * side
            x0 = cx * side - box_w / 2 - (side - width) / 2
            y0 = cy * side - box_h / 2 - (side - height) / 2
            if min(box_w, box_h) < self.min_size:
                continue
            x1, y1 = min(float(width), x0 + box_w), min(float(height), y0 + box_h)
            x0, y0 = max(0.0, x0), max(0.0, y0)
            if x1 - x0 <= 1 or y1 - y0 <= 1:
                continue
            box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
            faces.append(Face(box, float(score), eye_line_roll(right_eye, left_eye)))
        return non_max_suppression(faces, self.iou_threshold)

    @staticmethod
    def _input(frame: np.ndarray, size: int) -> np.ndarray:
        if frame.ndim == 2 or frame.shape[2] == 1:
            rgb = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
        elif frame.shape[2] == 4:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        else:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        small = cv2.resize(
            rgb,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        canvas = np.zeros((size, size, 3), np.float32)
        top = (size - small.shape[0]) // 2
        left = (size - small.shape[1]) // 2
        canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
        # Scaled to [-1, 1]; the padding becomes -1, black, as MediaPipe pads.
        tensor = canvas * np.float32(2.0 / 255.0) - np.float32(1.0)
        return tensor[np.newaxis]
