"""Fitting the model to one person: a few seconds of their faces shift its decisions.

FER2013 is thousands of strangers. One person's relaxed face may sit close to the model's "sad",
their smile be faint, their frown read as "none". Retraining needs a workstation; a bias per
label on the log-probabilities, ``softmax(log p + b)``, moves the boundaries between labels at
no cost per frame and can be learnt from seconds of that person's faces. It is the correction
``bench/class_offsets.py`` measures on the data set, fitted here on the person's recordings.

The file keeps the model it was fitted for (its sha256), the offsets and the recorded scores, so
that recording another expression later refits on everything. The daemon applies it only to
that model and says so when it does not.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from edge.bundle import ModelBundle
from edge.camera.base import EndOfStream, FrameSource
from edge.cli import TerminalProgress
from edge.detect import detect_faces, outside_regions
from edge.detect.base import FaceDetector
from edge.errors import CommandRefused, YuzugError
from edge.page_text import page_text
from edge.publish.spool import replace_synced

if TYPE_CHECKING:
    from edge.classify.emotion import EmotionClassifier
    from edge.config import EdgeConfig, Region

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Half a step of the int8 output (1/256): a probability that quantized to 0 stays finite in log
# space, so an offset can still lift it.
PROBABILITY_FLOOR = 1.0 / 512
# e^1.5 = 4.5x the odds at most: enough for a resting face that reads "sad", too little to make
# the model say one label whatever the face does.
OFFSET_LIMIT = 1.5
OFFSET_STEP = 0.05
# Mean recall given up per unit of squared offset: of the offsets that explain the recordings
# equally well, the smallest wins, and a lone odd frame does not buy a large one.
OFFSET_PENALTY = 0.02
# More for a label nobody recorded: its offset has no evidence of its own and changes how
# every face is read. On FER2013's test faces (bench/personalize.py), fitted to a relaxed face
# alone: neutral named an emotion 37% -> 26% and sad recall 65% -> 55% with it, where the plain
# penalty gave 20% and 37%.
UNRECORDED_PENALTY = 0.05
MAX_SWEEPS = 10
OFFSET_GRID = np.round(np.arange(-OFFSET_LIMIT, OFFSET_LIMIT + OFFSET_STEP / 2, OFFSET_STEP), 2)
MAX_SAMPLES_PER_LABEL = 600  # 40 s at 15 fps; older rows go first


class PersonalizationError(YuzugError):
    """A personalization file is unreadable or does not describe offsets for a model."""


class NoPersonalization(PersonalizationError):
    """There is no personalization file (nobody has recorded one)."""


class FittedForAnotherModel(PersonalizationError):
    """The offsets were fitted for another model (before a new one was pushed, say)."""


# Why a personal file is not applied, as the daemon reports it ("code" beside "reason"), for the
# live page to say in its language.
NOT_APPLIED_CODES = ("other_model", "unreadable")


def apply_offsets(probabilities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``softmax(log p + offsets)`` row by row, in float32."""
    logits = _log(probabilities) + offsets
    logits -= logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(probabilities, PROBABILITY_FLOOR))


def _recall(log_rows: np.ndarray, label_index: int, offsets: np.ndarray) -> float:
    return float(np.mean(np.argmax(log_rows + offsets, axis=1) == label_index))


def recalls(
    samples: Mapping[str, np.ndarray], labels: Sequence[str], offsets: np.ndarray
) -> dict[str, float]:
    """Each recorded label's share of faces the offsets make the model call by that label."""
    return {
        label: _recall(_log(rows), labels.index(label), offsets)
        for label, rows in samples.items()
        if len(rows)
    }


def fit_offsets(
    samples: Mapping[str, np.ndarray], labels: Sequence[str], reference: str
) -> np.ndarray:
    """The offsets that best recover each recording's label (mean recall over the labels
    recorded, less :data:`OFFSET_PENALTY` per unit of squared offset, and
    :data:`UNRECORDED_PENALTY` more for a label not recorded).

    Coordinate ascent over a grid; ``reference`` keeps offset 0, since adding one constant to
    every label changes nothing. A label not recorded still moves: recording only a relaxed
    face lowers the emotions against "none" just enough for that face.
    """
    if not any(len(rows) for rows in samples.values()):
        raise PersonalizationError("no faces were recorded, so there is nothing to fit")
    logs = [(_log(rows), list(labels).index(label)) for label, rows in samples.items() if len(rows)]

    penalty = np.array(
        [
            OFFSET_PENALTY + (0 if len(samples.get(label, ())) else UNRECORDED_PENALTY)
            for label in labels
        ]
    )

    def objective(offsets: np.ndarray) -> float:
        mean_recall = np.mean([_recall(x, i, offsets) for x, i in logs])
        return float(mean_recall) - float(np.sum(penalty * offsets**2))

    free = [j for j, label in enumerate(labels) if label != reference]
    return coordinate_ascent(objective, len(labels), free, OFFSET_GRID)


def coordinate_ascent(
    objective: Callable[[np.ndarray], float],
    size: int,
    free: Sequence[int],
    grid: np.ndarray,
    sweeps: int = MAX_SWEEPS,
) -> np.ndarray:
    """The ``size`` offsets (0 outside ``free``) that maximise ``objective``, tried one
    coordinate at a time over ``grid`` until a sweep improves nothing."""
    offsets = np.zeros(size)
    best = objective(offsets)
    for _ in range(sweeps):
        improved = False
        for j in free:
            for value in grid:
                trial = offsets.copy()
                trial[j] = value
                score = objective(trial)
                if score > best + 1e-12:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return offsets


@dataclass
class Personalization:
    """Offsets fitted for one model, with the recordings they were fitted on."""

    model_sha256: str
    model_name: str
    labels: list[str]
    offsets: dict[str, float]
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    created: str = ""

    def offsets_array(self) -> np.ndarray:
        return np.array([self.offsets.get(label, 0.0) for label in self.labels], np.float32)

    def offsets_for(self, bundle: ModelBundle) -> np.ndarray:
        """The offsets in ``bundle``'s label order.

        Raises:
            FittedForAnotherModel: they were fitted for another model.
        """
        if bundle.manifest.model.sha256 != self.model_sha256 or bundle.labels != self.labels:
            raise FittedForAnotherModel(
                f"fitted for model {self.model_name}, not {bundle.manifest.full_name}; record "
                "again with `yuzug-edge personalize` to fit this model"
            )
        return self.offsets_array()

    def describe(self) -> str:
        return describe_offsets(self.offsets, self.face_count)

    @property
    def face_count(self) -> int:
        return sum(len(rows) for rows in self.samples.values())

    def applied(self) -> dict[str, Any]:
        """What the daemon reports while these offsets apply (see :func:`applied_words`)."""
        return {
            "state": "on",
            "offsets": {label: round(value, 4) for label, value in self.offsets.items() if value},
            "faces": self.face_count,
        }

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "created": self.created,
                "model": {"name": self.model_name, "sha256": self.model_sha256},
                "labels": self.labels,
                "offsets": {label: round(value, 4) for label, value in self.offsets.items()},
                "samples": {
                    label: np.round(rows, 4).tolist() for label, rows in self.samples.items()
                },
            }
        )

    def save(self, path: Path) -> None:
        try:
            replace_synced(path, self.to_json() + "\n")
        except OSError as exc:
            raise PersonalizationError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_personalization(path: Path) -> Personalization:
    """Reads a file :meth:`Personalization.save` wrote.

    Raises:
        PersonalizationError: the file is missing, unreadable, or not such a file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoPersonalization(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PersonalizationError(f"{path}: not a readable personalization file ({exc})") from None
    try:
        if data["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"format_version {data['format_version']!r}, expected {FORMAT_VERSION}"
            )
        labels = [str(label) for label in data["labels"]]
        offsets = {str(k): float(v) for k, v in data["offsets"].items()}
        if set(offsets) - set(labels) or not all(abs(v) <= OFFSET_LIMIT for v in offsets.values()):
            raise ValueError("offsets for unknown labels or beyond the limit")
        samples = {
            str(label): _score_rows(rows, len(labels))
            for label, rows in data.get("samples", {}).items()
            if label in labels
        }
        return Personalization(
            model_sha256=str(data["model"]["sha256"]),
            model_name=str(data["model"]["name"]),
            labels=labels,
            offsets=offsets,
            samples=samples,
            created=str(data.get("created", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PersonalizationError(f"{path}: not a personalization file ({exc})") from None


def _score_rows(rows: Any, width: int) -> np.ndarray:
    """Recorded scores as ``(n, width)``; a row of another width or a non-finite value is
    refused (a NaN would make every decision on it the first label)."""
    array = np.asarray(rows, np.float32)
    if array.size == 0:
        return array.reshape(0, width)
    if array.ndim != 2 or array.shape[1] != width or not np.isfinite(array).all():
        raise ValueError(f"recorded scores must be rows of {width} finite numbers")
    return array


def personalize(
    bundle: ModelBundle,
    recorded: Mapping[str, np.ndarray],
    earlier: Personalization | None = None,
) -> Personalization:
    """Fits offsets to the faces just recorded plus, for the same model, the earlier file's
    recordings of the labels not recorded again."""
    labels = bundle.labels
    samples: dict[str, np.ndarray] = {}
    if earlier is not None and earlier.model_sha256 == bundle.manifest.model.sha256:
        samples.update(earlier.samples)
    for label, rows in recorded.items():
        if len(rows):
            samples[label] = np.asarray(rows, np.float32)[-MAX_SAMPLES_PER_LABEL:]
    reference = bundle.manifest.abstain_label or labels[0]
    offsets = fit_offsets(samples, labels, reference)
    return Personalization(
        model_sha256=bundle.manifest.model.sha256,
        model_name=bundle.manifest.full_name,
        labels=list(labels),
        offsets={label: round(float(v), 2) for label, v in zip(labels, offsets, strict=True)},
        samples=samples,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def record_faces(
    source: FrameSource,
    detector: FaceDetector,
    classifier: EmotionClassifier,
    seconds: float,
    progress: Callable[[int], None] | None = None,
    straighten: bool = True,
    ignore_regions: Sequence[Region] = (),
) -> np.ndarray:
    """The model's own scores (offsets left out) for the largest face of each frame read
    during ``seconds``, cropped as the daemon crops it (``classifier.straighten_faces``), faces
    in ``camera.ignore_regions`` left out. A finite source that ends stops the recording early.

    Raises:
        CameraError: the camera failed while recording.
    """
    rows: list[np.ndarray] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = source.read()
        except EndOfStream:
            break
        faces = outside_regions(detect_faces(detector, frame), ignore_regions, frame.image)[:1]
        if faces:
            crops = classifier.face_crops(frame.image, faces, straighten)
            rows.append(classifier.own_probabilities(crops, classifier.framings)[0])
            if progress is not None:
                progress(len(rows))
    return np.array(rows, np.float32).reshape(-1, len(classifier.labels))


MAX_RECORDING_SECONDS = 60.0


class PersonalRecorder:
    """Records one label at a time inside the running daemon (the live page's buttons, so the
    service need not stop to free the camera) and refits the file when each recording ends.

    The analysis thread feeds it the model's own scores of the largest face in each frame;
    the HTTP threads start, read and forget.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._label: str | None = None
        self._from = 0.0  # a delay lets the person get ready: frames before this are not kept
        self._until = 0.0
        self._rows: list[np.ndarray] = []
        self.last: dict[str, Any] | None = None  # how the latest recording ended

    def start(
        self, label: str, seconds: float, labels: Sequence[str], now: float, delay: float = 0.0
    ) -> None:
        """Records ``label`` for ``seconds`` from ``delay`` seconds on (time to face the
        camera after pressing a button on a phone).

        Raises:
            PersonalizationError: no file is configured, or the label or time is wrong.
            CommandRefused: a recording is already running.
        """
        if self.path is None:
            raise PersonalizationError(
                "no classifier.personal_file to keep recordings in (under systemd it is "
                "$STATE_DIRECTORY/personal.json)"
            )
        if label not in labels:
            raise PersonalizationError(f"{label!r} is not one of the model's labels {list(labels)}")
        if not 1 <= seconds <= MAX_RECORDING_SECONDS:
            raise PersonalizationError(f"seconds must be from 1 to {MAX_RECORDING_SECONDS:g}")
        if not 0 <= delay <= MAX_RECORDING_SECONDS:
            raise PersonalizationError(f"delay must be from 0 to {MAX_RECORDING_SECONDS:g}")
        with self._lock:
            if self._label is not None:
                raise CommandRefused(f"already recording {self._label}", "busy")
            self._label, self._rows = label, []
            self._from, self._until = now + delay, now + delay + seconds
        logger.info("personalization: recording %s for %g s in %g s", label, seconds, delay)

    def cancel(self, why: str, code: str) -> None:
        """Drops a recording in progress (its scores are the old model's after a reload, and
        a closed camera sees nobody); ``code`` is one of ``REASON_CODES``, ``why`` the same in
        the log's words."""
        with self._lock:
            if self._label is not None:
                self.last = {
                    "label": self._label,
                    "faces": len(self._rows),
                    "error": why,
                    "code": code,
                }
                self._label = None

    def observe(
        self, now: float, row: np.ndarray | None, bundle: ModelBundle
    ) -> Personalization | None:
        """Adds a frame's largest-face scores (``None``: no face); when the recording's time
        is up, fits and saves, and returns the new personalization."""
        with self._lock:
            if self._label is None:
                return None
            if row is not None and now >= self._from:
                self._rows.append(row)
            if now < self._until:
                return None
            label, rows, self._label = self._label, self._rows, None
        if not rows:
            self.last = {"label": label, "faces": 0, "error": "no face was seen", "code": "no_face"}
            return None
        assert self.path is not None
        try:
            try:
                earlier: Personalization | None = load_personalization(self.path)
            except NoPersonalization:
                earlier = None
            except PersonalizationError as exc:  # a damaged file: this recording replaces it
                logger.warning("personalization: %s; starting a new file", exc)
                earlier = None
            personal = personalize(bundle, {label: np.array(rows)}, earlier)
            personal.save(self.path)
        except PersonalizationError as exc:
            logger.warning("personalization: recording %s not kept: %s", label, exc)
            self.last = {"label": label, "faces": len(rows), "error": str(exc)}
            return None
        self.last = {"label": label, **summary(personal, bundle.manifest.abstain_label)}
        logger.info("personalization: recorded %s; offsets %s", label, personal.describe())
        return personal

    def forget(self) -> None:
        """Deletes the file and its recordings.

        Raises:
            PersonalizationError: the file cannot be removed.
        """
        with self._lock:
            self._label = None
        if self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                raise PersonalizationError(
                    f"cannot remove {self.path}: {exc.strerror or exc}"
                ) from None
        self.last = {"forgotten": True}

    @property
    def recording(self) -> str | None:
        """The label being recorded, if any."""
        return self._label

    def status(self, now: float) -> dict[str, Any]:
        with self._lock:
            recording = (
                None
                if self._label is None
                else {
                    "label": self._label,
                    "starts_in": round(max(0.0, self._from - now), 1),
                    "seconds_left": round(max(0.0, self._until - now), 1),
                    "faces": len(self._rows),
                }
            )
        return {"available": self.path is not None, "recording": recording, "last": self.last}


def summary(personal: Personalization, abstain: str | None = None) -> dict[str, Any]:
    """Recall on the recordings before and after the offsets, per recorded label, and what
    to record next for a more balanced fit."""
    zero = np.zeros(len(personal.labels), np.float32)
    return {
        "before": recalls(personal.samples, personal.labels, zero),
        "after": recalls(personal.samples, personal.labels, personal.offsets_array()),
        "offsets": personal.offsets,
        "faces": {label: len(rows) for label, rows in personal.samples.items()},
        "hint": hint(personal, abstain),
        "advice": advice(personal, abstain),
    }


# What advice() may say; the live page has words for each (edge.page_text "hints").
RECORD_RELAXED, NOT_RECORDED = "record_relaxed", "not_recorded"
ADVICE_CODES = (RECORD_RELAXED, NOT_RECORDED)


def advice(personal: Personalization, abstain: str | None) -> dict[str, Any] | None:
    """What a fit on these recordings cannot weigh: the relaxed face, if it was not recorded
    while an emotion was raised (``record_relaxed``); a label whose offset moved with no
    recording of its own (``not_recorded``). The labels concerned go with the code, so the live
    page can say it in its own language."""
    recorded = {label for label, rows in personal.samples.items() if len(rows)}
    raised = [label for label, value in personal.offsets.items() if value > 0]
    if abstain and abstain not in recorded and raised:
        return {"code": RECORD_RELAXED, "labels": raised}
    moved = [label for label, value in personal.offsets.items() if value and label not in recorded]
    if moved:
        return {"code": NOT_RECORDED, "labels": moved}
    return None


def hint(personal: Personalization, abstain: str | None) -> str | None:
    """:func:`advice` in English words (the live page's), for the command line and the log."""
    said = advice(personal, abstain)
    if said is None:
        return None
    return page_text("en")["hints"][said["code"]].format(labels=", ".join(said["labels"]))


def describe_offsets(offsets: dict[str, float], faces: int) -> str:
    moved = [f"{label} {value:+.2f}" for label, value in offsets.items() if value]
    return f"{', '.join(moved) or 'no offsets'} (from {faces} recorded faces)"


def applied_words(applied: dict[str, Any]) -> str:
    """A personalization's state for people, as ``/healthz`` and ``doctor`` say it: ``off``,
    ``on: sad -0.20 (from 96 recorded faces)`` or ``not applied: <why>``."""
    if applied["state"] == "on":
        return f"on: {describe_offsets(applied['offsets'], applied['faces'])}"
    if applied["state"] == "not_applied":
        return f"not applied: {applied['reason']}"
    return "off"


PROMPTS = {
    "none": "your everyday, relaxed face",
    "neutral": "your everyday, relaxed face",
    "happy": "a happy face: smile",
    "sad": "a sad face",
    "angry": "an angry face",
}


def run_personalize(args: Any, out: TextIO) -> int:
    """``yuzug-edge personalize``: records each label in turn, fits, saves, and shows how
    the model now reads the recordings."""
    from edge.app import resolve_config
    from edge.bundle import load_bundle
    from edge.camera import make_source
    from edge.classify.emotion import EmotionClassifier
    from edge.detect import make_detector
    from edge.models import default_bundle_path

    config = resolve_config(args)
    target = args.out or config.classifier.personal_file
    if target is None:
        raise PersonalizationError(
            "--out FILE is needed: no classifier.personal_file is configured (under systemd "
            "the daemon reads $STATE_DIRECTORY/personal.json, /var/lib/yuzug-edge/personal.json)"
        )
    bundle = load_bundle(config.classifier.model or default_bundle_path())
    labels = args.labels or _recording_order(bundle)
    unknown = [label for label in labels if label not in bundle.labels]
    if unknown:
        raise PersonalizationError(
            f"--labels: {', '.join(unknown)} not among the model's labels "
            f"({', '.join(bundle.labels)})"
        )
    earlier = None
    if not args.reset:
        try:
            earlier = load_personalization(target)
        except NoPersonalization:
            pass
        except PersonalizationError as exc:
            raise PersonalizationError(f"{exc}; --reset starts a new file") from None
    # The daemon's own settings (flip and framing averaging change the scores that are fitted).
    classifier = EmotionClassifier.from_bundle(
        bundle,
        num_threads=config.classifier.num_threads,
        flip_average=config.classifier.flip_average,
        average_framings=config.classifier.average_framings,
    )
    detector = make_detector(config.detector, measure_lean=config.classifier.straighten_faces)
    try:
        camera = make_source(config.camera)
        recorded = _record_each(camera, detector, classifier, labels, args, out, config)
    except KeyboardInterrupt:
        print("stopped: nothing saved", file=out)
        return 130
    personal = personalize(bundle, recorded, earlier)
    personal.save(target)
    _print_summary(personal, bundle.manifest.abstain_label, out)
    print(
        f"saved to {target}; the daemon applies it at its next start or reload "
        "(sudo systemctl reload yuzug-edge)",
        file=out,
    )
    return 0


def _record_each(
    camera: FrameSource,
    detector: FaceDetector,
    classifier: EmotionClassifier,
    labels: list[str],
    args: Any,
    out: TextIO,
    config: EdgeConfig,
) -> dict[str, np.ndarray]:
    recorded: dict[str, np.ndarray] = {}
    with camera as source:
        for label in labels:
            print(
                f"{label}: look at the camera with {PROMPTS.get(label, repr(label))}, "
                f"for {args.seconds:g} s",
                file=out,
                flush=True,
            )
            _count_down(source, args.countdown, out)
            shown = TerminalProgress(f"  recording {label}", out)  # on a terminal only
            counted = functools.partial(shown.update, what="faces")
            rows = record_faces(
                source,
                detector,
                classifier,
                args.seconds,
                counted,
                config.classifier.straighten_faces,
                config.camera.ignore_regions,
            )
            shown.close()
            print(f"  {len(rows)} faces recorded", file=out, flush=True)
            if not len(rows):
                print(f"  no face seen: {label} is left out", file=out, flush=True)
            recorded[label] = rows
    return recorded


def _recording_order(bundle: ModelBundle) -> list[str]:
    """The relaxed face first (what a camera sees most), then the emotions in label order."""
    abstain = bundle.manifest.abstain_label
    return ([abstain] if abstain else []) + [label for label in bundle.labels if label != abstain]


def _count_down(source: FrameSource, seconds: float, out: TextIO) -> None:
    """Waits ``seconds``, reading frames meanwhile so that a camera's buffered frames from
    before the prompt are not recorded."""
    end = time.monotonic() + seconds
    shown = None
    while (left := end - time.monotonic()) > 0:
        if shown != int(left) + 1:
            shown = int(left) + 1
            print(f"  {shown}…", file=out, flush=True)
        try:
            source.read()
        except EndOfStream:
            return


def _print_summary(personal: Personalization, abstain: str | None, out: TextIO) -> None:
    result = summary(personal, abstain)
    print("label     faces  model alone  with offsets", file=out)
    for label, faces in result["faces"].items():
        print(
            f"{label:<9} {faces:>5}  {result['before'][label]:>10.0%}  "
            f"{result['after'][label]:>12.0%}",
            file=out,
        )
    print(f"offsets: {personal.describe()}", file=out)
    if result["hint"]:
        print(result["hint"], file=out)
