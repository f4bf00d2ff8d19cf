"""``yuzug-train``: prepare | fit | calibrate | export | evaluate | run (the whole chain).

Each step reads and writes one run directory, so a step can be repeated alone. The Keras
backend is chosen here, before Keras is first imported: JAX for fit and evaluate (switchable
with ``--backend``), TensorFlow for export, whose LiteRT converter needs it. ``run`` executes
every step in its own process for that reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.cli import log_level_argument, number_argument
from edge.errors import YuzugError
from edge.log import setup_logging

if TYPE_CHECKING:
    from trainer.data import PreparedData
    from trainer.presets import Preset

logger = logging.getLogger("trainer")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        "--out",
        dest="run",
        type=Path,
        required=True,
        help="run directory (created if missing)",
    )
    parser.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    parser.add_argument("--log-level", type=log_level_argument, default="INFO")


def _add_prepare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data",
        type=Path,
        help="class-folder tree (optionally with train/ test/), .zip of one, or fer2013.csv",
    )
    parser.add_argument(
        "--preset", default="default", help="sets the input size (default: default)"
    )
    parser.add_argument(
        "--size",
        type=number_argument("--size", int, at_least=8),
        help="input size, overriding the preset's",
    )
    parser.add_argument(
        "--classes",
        default=None,
        help="comma-separated classes in label order (default angry,happy,sad); "
        "LABEL=CLASS reads a class of the data set under another name "
        "(angry=anger,happy=happiness,sad=sadness)",
    )
    parser.add_argument(
        "--other-label",
        default=None,
        help="map every other class of the data set to this label (e.g. none)",
    )
    parser.add_argument(
        "--other-classes",
        default=None,
        help="comma-separated classes that feed --other-label (default: all the others; "
        "e.g. neutral)",
    )
    parser.add_argument(
        "--val-fraction", type=number_argument("--val-fraction", above=0, below=1), default=0.1
    )
    parser.add_argument(
        "--duplicate-rms",
        type=number_argument("--duplicate-rms", at_least=0),
        default=8.0,
        help="near-duplicate threshold, RMS difference on 0-255 (0: exact only)",
    )
    parser.add_argument(
        "--detect-faces",
        action="store_true",
        help="the images are photos, not face crops: crop each one's largest face as the "
        "daemon does (BlazeFace); images without a face are left out and listed",
    )
    parser.add_argument(
        "--camera-framing",
        type=number_argument("--camera-framing", at_least=0, at_most=1),
        default=0.0,
        metavar="FRACTION",
        help="replace this share of the train faces by the daemon's crop of each face pasted "
        "into a camera frame (BlazeFace's framing, not the data set's); validation and test "
        "keep the data set's framing",
    )
    parser.add_argument(
        "--threads",
        type=number_argument("--threads", int, at_least=1),
        default=os.cpu_count() or 1,
        help="detector threads for --camera-framing (default: the CPU count, %(default)s); "
        "the faces come out the same for any count",
    )
    parser.add_argument(
        "--exclude-list",
        type=Path,
        help="file of face keys to drop from train, one a line (yuzug-train audit writes one: "
        "faces whose labels the models firmly contradict)",
    )
    parser.add_argument(
        "--train-fraction",
        type=number_argument("--train-fraction", above=0, at_most=1),
        default=1.0,
        metavar="FRACTION",
        help="keep this share of the train faces (stratified; a smaller share's faces are all "
        "in a larger one's for a seed) with validation and test unchanged: the points of a "
        "learning curve, how much more faces would buy",
    )
    parser.add_argument(
        "--fold",
        type=_fold,
        metavar="I/K",
        help="hold out fold I (0-based) of K stratified folds of train, for cross-fitted "
        "label audits (yuzug-train audit scores each model on its own held-out fold)",
    )


def _add_fit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default")
    _add_schedule_args(parser)
    parser.add_argument(
        "--backend",
        choices=("jax", "tensorflow", "torch"),
        help="Keras backend for fit/evaluate (default jax)",
    )
    _add_input_args(parser)
    _add_selection_args(parser)
    _add_distill_args(parser)
    scale = parser.add_argument_group("scale (JAX backend)")
    scale.add_argument(
        "--shards", type=Path, help="stream training data from tar shards (yuzug-train shard)"
    )
    scale.add_argument(
        "--checkpoint-every",
        type=number_argument("--checkpoint-every", int, at_least=1),
        metavar="STEPS",
        help="write a resumable checkpoint every STEPS steps",
    )
    scale.add_argument(
        "--resume", action="store_true", help="continue a killed run from its last checkpoint"
    )
    scale.add_argument(
        "--batch-scaling",
        choices=("fixed", "linear"),
        default="fixed",
        help="fixed: the batch is global (results independent of device "
        "count); linear: per device, learning rate scaled too",
    )
    scale.add_argument("--coordinator", help="host:port of process 0 in a multi-host job")
    scale.add_argument("--num-processes", type=number_argument("--num-processes", int, at_least=1))
    scale.add_argument("--process-id", type=number_argument("--process-id", int, at_least=0))


def _add_schedule_args(parser: argparse.ArgumentParser) -> None:
    """The preset overrides that fit and run share."""
    parser.add_argument(
        "--epochs",
        type=number_argument("--epochs", int, at_least=1),
        help="override the preset's epoch count",
    )
    parser.add_argument("--batch-size", type=number_argument("--batch-size", int, at_least=1))
    parser.add_argument(
        "--learning-rate",
        type=number_argument("--learning-rate", above=0),
        help="override the preset's peak learning rate",
    )
    parser.add_argument(
        "--optimizer",
        choices=("adam", "adamw", "sgd"),
        help="override the preset's optimizer (sgd: Nesterov momentum 0.9; give it a learning "
        "rate near 0.01 and a --weight-decay near 0.001)",
    )
    parser.add_argument(
        "--weight-decay",
        type=number_argument("--weight-decay", at_least=0),
        help="override the preset's decoupled weight decay (adamw, sgd)",
    )
    parser.add_argument(
        "--class-weights",
        choices=("balanced", "none"),
        help="override the preset's loss weights per class: balanced (each class counts "
        "equally; the trained presets' default, for recall on small classes) or none (every "
        "face counts equally, for plain accuracy)",
    )


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--augment-on",
        choices=("host", "device"),
        help="where training augmentation runs: host (numpy/OpenCV, the presets' default) or "
        "device (the same transforms compiled with JAX on the GPU; JAX backend only)",
    )
    parser.add_argument(
        "--time-budget",
        type=number_argument("--time-budget", above=0),
        metavar="SECONDS",
        help="fit the schedule (warm-up, cosine decay) into SECONDS of training, up to the "
        "preset's epochs, planned afresh each epoch from the pace so far (early stopping off)",
    )
    parser.add_argument(
        "--input-threads",
        type=number_argument("--input-threads", int, at_least=1),
        default=1,
        help="threads that augment in-memory batches ahead (default 1; 4-8 keep a GPU fed; "
        "the batches are the same for any count)",
    )
    parser.add_argument(
        "--max-shift",
        type=number_argument("--max-shift", at_least=0, below=1),
        metavar="FRACTION",
        help="override the preset's largest random shift, a fraction of the side (default "
        "preset 0.1; a detector's square wanders about 0.11 of the side around FER2013's, "
        "bench/framing.py)",
    )
    parser.add_argument(
        "--max-zoom",
        type=number_argument("--max-zoom", at_least=0, below=1),
        metavar="FRACTION",
        help="override the preset's random zoom range, scale in [1 - Z, 1 + Z] (default preset "
        "0.1)",
    )
    parser.add_argument(
        "--degrade",
        type=number_argument("--degrade", at_least=0, at_most=1),
        metavar="P",
        help="camera degradations: each of a far (small) face, defocus blur, sensor noise and "
        "JPEG compression strikes a training face independently with probability P (0.2-0.3 "
        "usual; default 0, off; host augmentation only)",
    )
    parser.add_argument(
        "--darken",
        type=number_argument("--darken", at_least=0, at_most=1),
        metavar="P",
        help="a dark room: a training face at 7-50%% of its light with the sensor noise the "
        "gain raises, with probability P (default 0, off; host augmentation only)",
    )
    parser.add_argument(
        "--mixup",
        type=number_argument("--mixup", at_least=0),
        metavar="ALPHA",
        help="mixup: blend each batch with a shuffled copy of itself, pixels, labels and "
        "loss weights alike, the share drawn from Beta(ALPHA, ALPHA) (0.2-0.4 usual)",
    )
    parser.add_argument(
        "--sam",
        type=number_argument("--sam", above=0, at_most=1),
        metavar="RHO",
        help="sharpness-aware minimization: each step follows the gradient taken a step of "
        "length RHO uphill (0.05 usual; two passes per step, jax backend only)",
    )
    parser.add_argument(
        "--cutmix",
        type=number_argument("--cutmix", at_least=0),
        metavar="ALPHA",
        help="CutMix: paste a box of another face of the batch, labels mixed by area, the "
        "share drawn from Beta(ALPHA, ALPHA) (1.0 usual); with --mixup, one of the two per batch",
    )


def _add_selection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--select-by",
        choices=("accuracy", "emotion-recall"),
        default="accuracy",
        help="which epoch to keep: best validation accuracy (default), or best mean recall over "
        "the emotions, the --other-label class left out (for a none that holds most faces)",
    )
    parser.add_argument(
        "--ema",
        type=number_argument("--ema", above=0, below=1),
        metavar="MOMENTUM",
        help="validate, select and save an exponential moving average of the weights, "
        "updated every step with this momentum (0.99-0.9999; about 1/(1-MOMENTUM) steps)",
    )


def _add_distill_args(parser: argparse.ArgumentParser) -> None:
    distill = parser.add_argument_group("distillation")
    distill.add_argument(
        "--teacher",
        type=Path,
        action="append",
        default=[],
        help="run directory or .keras model to distil from; repeat for an ensemble",
    )
    distill.add_argument(
        "--distill-weight",
        type=number_argument("--distill-weight", at_least=0, at_most=1),
        default=0.5,
        help="the teachers' share of each training target (default 0.5)",
    )
    distill.add_argument(
        "--init-from",
        type=Path,
        help="start from this run's (or .keras file's) weights instead of random ones: the "
        "same preset and classes; best on the same prepared data, so validation stays unseen",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yuzug-train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="ingest, clean and split a data set")
    _add_prepare_args(prepare)
    _add_common(prepare)
    fit = commands.add_parser("fit", help="train a preset on prepared data")
    _add_fit_args(fit)
    _add_common(fit)
    calibrate = commands.add_parser(
        "calibrate", help="fit a temperature on validation and bake it into model.keras"
    )
    calibrate.add_argument("--backend", choices=("jax", "tensorflow", "torch"))
    _add_common(calibrate)
    export = commands.add_parser("export", help="write .keras/.h5/.json/.tflite and the bundle")
    _add_common(export)
    shard = commands.add_parser("shard", help="write prepared data as tar shards")
    shard.add_argument("--shards", type=Path, required=True, help="output directory")
    shard.add_argument(
        "--shard-size",
        type=number_argument("--shard-size", int, at_least=1),
        default=10000,
        help="records per shard",
    )
    _add_common(shard)
    evaluate = commands.add_parser("evaluate", help="score Keras and TFLite models on test data")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--backend", choices=("jax", "tensorflow", "torch"))
    _add_common(evaluate)
    run = commands.add_parser("run", help="prepare -> fit -> export -> evaluate")
    _add_prepare_args(run)
    _add_schedule_args(run)
    run.add_argument("--backend", choices=("jax", "tensorflow", "torch"))
    _add_input_args(run)
    _add_selection_args(run)
    _add_distill_args(run)
    _add_common(run)
    audit = commands.add_parser(
        "audit", help="list training faces whose labels the models firmly contradict"
    )
    audit.add_argument(
        "data",
        type=Path,
        nargs="?",
        help="the data set the --model bundles were trained on (--run brings its own)",
    )
    audit.add_argument(
        "--model",
        dest="models",
        action="append",
        type=Path,
        default=[],
        help="a bundle; repeat to average several (cross-fit: one per --fold)",
    )
    audit.add_argument(
        "--run",
        dest="runs",
        action="append",
        type=Path,
        default=[],
        help="a run directory, scored with its Keras model on its own prepared data (no "
        "export needed); repeatable",
    )
    audit.add_argument("--out", type=Path, required=True, help="directory for the lists")
    audit.add_argument(
        "--min-probability",
        type=number_argument("--min-probability", above=0, at_most=1),
        default=0.8,
        help="flag a face when the models give another label at least this (default 0.8)",
    )
    audit.add_argument(
        "--draw",
        type=Path,
        metavar="PNG",
        help="draw the firmest flagged faces (data-set faces: keep it out of the repository)",
    )
    audit.add_argument(
        "--threads",
        type=number_argument("--threads", int, at_least=1),
        default=1,
        help="interpreter threads per bundle",
    )
    audit.add_argument("--log-level", type=log_level_argument, default="INFO")
    audit.set_defaults(run=None)
    presets = commands.add_parser("presets", help="list the model presets")
    presets.set_defaults(run=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "log_level", "INFO"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "export":
        os.environ["KERAS_BACKEND"] = "tensorflow"
    elif getattr(args, "backend", None):
        os.environ["KERAS_BACKEND"] = args.backend
    else:
        os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        _check_output_folder(args)
        return COMMANDS[args.command](args)
    except (YuzugError, ValueError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:  # a folder that cannot be written, a full disk: one line, not a trace
        logger.debug("%s failed", args.command, exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        logger.error("%s%s", where, exc.strerror or exc)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside fit's training loop, which saves and stops
        logger.warning("%s: interrupted", args.command)
        return INTERRUPTED


# The folder each command writes into and may have to make.
OUTPUT_FOLDERS = {"prepare": "run", "run": "run", "audit": "out", "shard": "shards"}


def _check_output_folder(args: argparse.Namespace) -> None:
    """Makes the command's output folder before the work (an audit scores for minutes, a
    prepare decodes for seconds first), so that a folder that cannot be made is said at once."""
    name = OUTPUT_FOLDERS.get(args.command)
    folder = getattr(args, name, None) if name else None
    if isinstance(folder, Path):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise YuzugError(f"--{name} {folder}: cannot be made ({exc.strerror})") from None


def cmd_presets(args: argparse.Namespace) -> int:
    from trainer.presets import PRESETS

    for preset in PRESETS.values():
        print(
            f"{preset.name:8} {preset.input_size:>3}px {preset.epochs:>3} epochs  "
            f"{preset.description}"
        )
    return 0


def _fold(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/K such as 0/5, got {text!r}") from None
    if not (count >= 2 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"need 0 <= I < K and K >= 2, got {text!r}")
    return index, count


def _split_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def cmd_prepare(args: argparse.Namespace) -> int:
    from edge.preprocess import PreprocessSpec
    from trainer.data import format_summary, prepare, read_exclusion_list
    from trainer.presets import get_preset

    preset = get_preset(args.preset)
    exclude = read_exclusion_list(args.exclude_list) if args.exclude_list else set()
    spec = PreprocessSpec(size=args.size or preset.input_size, margin=preset.margin)
    other_classes = _split_list(args.other_classes)
    data, report = prepare(
        args.data,
        spec,
        _split_list(args.classes),
        other_label=args.other_label,
        other_classes=other_classes,
        val_fraction=args.val_fraction,
        duplicate_rms=args.duplicate_rms,
        seed=args.seed,
        fold=args.fold,
        exclude=exclude,
        min_classes=2,
        detect_faces=args.detect_faces,
        camera_framing=args.camera_framing,
        threads=args.threads,
        train_fraction=args.train_fraction,
    )
    data.save(args.run / "data.npz")  # main() made args.run before the work
    report_dict = report.to_dict()
    report_dict["other_label"] = args.other_label
    report_dict["other_classes"] = other_classes
    report_dict["seed"] = args.seed
    if report_dict["excluded"]:
        report_dict["excluded"]["list"] = str(args.exclude_list)
        report_dict["excluded"]["list_sha256"] = hashlib.sha256(
            args.exclude_list.read_bytes()
        ).hexdigest()
    (args.run / "prepare_report.json").write_text(json.dumps(report_dict, indent=2) + "\n")
    print(format_summary(report))
    if args.detect_faces:
        _draw_face_crops(data, args.run / "faces.png")
    if report.corrupt or report.no_face:
        print(f"the files left out are listed in {args.run / 'prepare_report.json'}")
    return 0


def _draw_face_crops(data: PreparedData, path: Path, per_class: int = 10) -> None:
    """The first training crops of each class in one picture: a look tells whether the
    detector found the faces in the photos (a crop of a poster or a knee would show)."""
    from trainer.plots import face_grid

    faces, captions = [], []
    blank = np.zeros(data.x["train"].shape[1:], np.uint8)
    for index, label in enumerate(data.classes):  # a row per class, blanks where it has fewer
        chosen = list(data.x["train"][data.y["train"] == index][:per_class])
        faces += chosen + [blank] * (per_class - len(chosen))
        captions += [label[:8]] * len(chosen) + [""] * (per_class - len(chosen))
    face_grid(faces, captions, path, columns=per_class)
    print(f"the face crops it found, {per_class} per class: {path}")


def _load_prepared(run: Path):  # noqa: ANN202 - PreparedData, imported lazily
    from trainer.data import PreparedData

    path = run / "data.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prepared data; run `yuzug-train prepare` first")
    return PreparedData.load(path)


def _load_prepared_for_model(run: Path):  # noqa: ANN202 - PreparedData, imported lazily
    """The run's prepared data, checked to be what its model was trained on: a `prepare` run
    again after `fit` (other classes, another --other-label) would otherwise give a bundle
    whose labels do not match the model, or scores on faces it was trained on."""
    from trainer.data import read_run_json

    data = _load_prepared(run)
    trained_on = read_run_json(run / "fit.json").get("data_fingerprint")
    if trained_on and trained_on != data.fingerprint:
        raise ValueError(
            f"{run}/data.npz was prepared again after fit (fingerprint {data.fingerprint[:16]}; "
            f"the model was trained on {trained_on[:16]}): run `yuzug-train fit` again, or "
            "prepare into another run directory"
        )
    return data


def _sized_to(preset, size: int):  # noqa: ANN001, ANN202 - Preset, imported lazily
    """The preset at the prepared data's input size: `prepare --size` chose it, and the data
    (and so the bundle's input contract) cannot be trained at any other."""
    if size != preset.input_size:
        logger.info(
            "training preset %s at the prepared data's %dx%d (its own size is %dx%d)",
            preset.name,
            size,
            size,
            preset.input_size,
            preset.input_size,
        )
    return preset.with_overrides(input_size=size)


def _with_augment(preset: Preset, **flags: float | None) -> Preset:
    """The preset with its augmentation's ranges overridden where a flag is given: each
    keyword is an :class:`~trainer.augment.AugmentConfig` field, named in errors by its
    command-line flag (:data:`_AUGMENT_FLAGS`)."""
    given: dict[str, Any] = {field: value for field, value in flags.items() if value is not None}
    if not given:
        return preset
    if preset.augment is None:
        named = " and ".join(_AUGMENT_FLAGS.get(field, field) for field in given)
        raise ValueError(f"{named} change augmentation, and preset {preset.name} has none")
    return preset.with_overrides(augment=replace(preset.augment, **given))


_AUGMENT_FLAGS = {
    "max_shift": "--max-shift",
    "max_zoom": "--max-zoom",
    "degrade_probability": "--degrade",
    "darken_probability": "--darken",
}


def cmd_fit(args: argparse.Namespace) -> int:
    from trainer.data import read_run_json
    from trainer.distributed import enable_data_parallel, initialize, scaled_batch_and_lr
    from trainer.presets import get_preset
    from trainer.train import TrainBatches, balanced_class_weights, fit

    topology = (
        initialize(args.coordinator, args.num_processes, args.process_id)
        if (os.environ["KERAS_BACKEND"] == "jax")
        else None
    )
    devices = topology.global_devices if topology else 1
    preset = get_preset(args.preset).with_overrides(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        augment_on=args.augment_on,
        ema_momentum=args.ema,
        sam_rho=args.sam,
        mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix,
        class_weighting=None if args.class_weights is None else args.class_weights == "balanced",
    )
    preset = _with_augment(
        preset,
        max_shift=args.max_shift,
        max_zoom=args.max_zoom,
        degrade_probability=args.degrade,
        darken_probability=args.darken,
    )
    if preset.optimizer == "adam" and preset.weight_decay:
        raise ValueError(
            "--weight-decay needs a decoupled-decay optimizer: add --optimizer adamw or sgd"
        )
    batch, learning_rate = scaled_batch_and_lr(
        preset.batch_size, preset.learning_rate, devices, args.batch_scaling
    )
    preset = preset.with_overrides(batch_size=batch, learning_rate=learning_rate)
    if topology is not None:
        enable_data_parallel(topology)
    process = (topology.process_id, topology.process_count) if topology else (0, 1)
    if args.shards and args.input_threads != 1:
        raise ValueError("--input-threads applies to in-memory data; --shards streams in one")
    if args.shards:
        from trainer.shards import ShardBatches, label_counts, prepared_from_shards

        data = prepared_from_shards(args.shards)
        counts = label_counts(args.shards)
    else:
        data = _load_prepared(args.run)
        counts = np.bincount(data.y["train"], minlength=len(data.classes))
    preset = _sized_to(preset, data.spec.size)
    weights = balanced_class_weights(counts) if preset.class_weighting else None
    if args.shards:
        batches = ShardBatches(args.shards, preset, args.seed, weights, *process)
    else:
        batches = TrainBatches(
            data, preset, args.seed, weights, *process, threads=args.input_threads
        )
    report = read_run_json(args.run / "prepare_report.json")
    select_classes = None
    if args.select_by == "emotion-recall":
        select_classes = [name for name in data.classes if name != report.get("other_label")]
    summary = fit(
        data,
        preset,
        args.run,
        seed=args.seed,
        train_batches=batches,
        devices=devices,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        teachers=args.teacher,
        distill_weight=args.distill_weight,
        time_budget=args.time_budget,
        select_classes=select_classes,
        init_from=args.init_from,
    )
    if report.get("other_label"):
        summary["abstain_label"] = report["other_label"]
        (args.run / "fit.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"fit: {summary['epochs_run']} epochs in {summary['fit_seconds']} s, "
        f"{summary['images_per_second']} images/s on {devices} device(s), kept epoch "
        f"{summary['best_epoch']} (best {summary['selected_by']}), val accuracy "
        f"{summary['best_val_accuracy']}"
    )
    if summary["interrupted_by"]:
        logger.warning(
            "fit was stopped by %s after %d of %d epochs; its best epoch so far is saved in "
            "%s: carry on with `yuzug-train calibrate --run %s`, then export and evaluate%s",
            summary["interrupted_by"],
            summary["epochs_run"],
            summary["epochs_requested"],
            args.run / "model.keras",
            args.run,
            " (or train on from the last checkpoint: the same fit command with --resume)"
            if args.checkpoint_every
            else "",
        )
        return INTERRUPTED
    return 0


def cmd_shard(args: argparse.Namespace) -> int:
    from trainer.shards import write_shards

    index = write_shards(_load_prepared(args.run), args.shards, args.shard_size)
    for split, shards in index["splits"].items():
        print(f"{split}: {sum(s['count'] for s in shards):,} records in {len(shards)} shard(s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from trainer.export import export

    bundle = export(args.run, _load_prepared_for_model(args.run), seed=args.seed)
    print(f"export: bundle {bundle.manifest.full_name} in {bundle.path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from trainer.calibrate import calibrate

    report = calibrate(args.run, _load_prepared_for_model(args.run))
    print(
        f"calibrate: temperature {report['fitted_temperature']} "
        f"({'applied' if report['applied'] else 'model unchanged'}); validation ECE "
        f"{report['val_ece'][0]} -> {report['val_ece'][1]}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate

    results = evaluate(args.run, _load_prepared_for_model(args.run), split=args.split)
    print(format_results(results))
    return 0


def format_results(results: dict) -> str:
    rows = [f"{'model':<14}{'accuracy':>10}{'macro-F1':>10}{'ECE':>8}  recall per class"]
    for key in ("keras_float", "tflite_float", "tflite_int8"):
        if key in results:
            r = results[key]
            recall = ", ".join(f"{k} {v['recall']:.1%}" for k, v in r["per_class"].items())
            rows.append(
                f"{key:<14}{r['accuracy']:>10.2%}{r['macro_f1']:>10.3f}{r['ece']:>8.3f}  {recall}"
            )
    latency = results["latency_int8"]
    rows.append(
        f"int8 vs keras: agreement {results['int8_vs_keras_agreement']:.1%}, gap "
        f"{results['int8_accuracy_gap_points']:+.2f} points; int8 per face "
        f"{latency['median_ms']} ms median, {latency['p90_ms']} ms p90 (1 thread)"
    )
    return "\n".join(rows)


def run_steps(args: argparse.Namespace) -> list[list[str]]:
    """The ``yuzug-train`` command lines ``run`` chains, each with the run's common flags."""
    common = ["--run", str(args.run), "--seed", str(args.seed), "--log-level", args.log_level]
    prepare = [
        "prepare",
        str(args.data),
        "--preset",
        args.preset,
        "--val-fraction",
        str(args.val_fraction),
        "--duplicate-rms",
        str(args.duplicate_rms),
    ]
    for flag, value in (
        ("--size", args.size),
        ("--classes", args.classes),
        ("--other-label", args.other_label),
        ("--other-classes", args.other_classes),
        ("--exclude-list", args.exclude_list),
        ("--fold", f"{args.fold[0]}/{args.fold[1]}" if args.fold else None),
    ):
        if value is not None:
            prepare += [flag, str(value)]
    if args.detect_faces:
        prepare.append("--detect-faces")
    if args.camera_framing:
        prepare += ["--camera-framing", str(args.camera_framing), "--threads", str(args.threads)]
    if args.train_fraction < 1:
        prepare += ["--train-fraction", str(args.train_fraction)]
    fit = ["fit", "--preset", args.preset]
    for flag, value in (
        ("--epochs", args.epochs),
        ("--batch-size", args.batch_size),
        ("--learning-rate", args.learning_rate),
        ("--optimizer", args.optimizer),
        ("--weight-decay", args.weight_decay),
        ("--class-weights", args.class_weights),
        ("--backend", args.backend),
        ("--input-threads", args.input_threads if args.input_threads != 1 else None),
        ("--augment-on", args.augment_on),
        ("--time-budget", args.time_budget),
        ("--max-shift", args.max_shift),
        ("--max-zoom", args.max_zoom),
        ("--degrade", args.degrade),
        ("--darken", args.darken),
        ("--mixup", args.mixup),
        ("--cutmix", args.cutmix),
        ("--sam", args.sam),
        ("--select-by", args.select_by if args.select_by != "accuracy" else None),
        ("--ema", args.ema),
        *(("--teacher", teacher) for teacher in args.teacher),
        ("--distill-weight", args.distill_weight if args.teacher else None),
        ("--init-from", args.init_from),
    ):
        if value is not None:
            fit += [flag, str(value)]
    backend = ["--backend", args.backend] if args.backend else []
    steps = [prepare, fit, ["calibrate", *backend], ["export"], ["evaluate", *backend]]
    return [[*step, *common] for step in steps]


def cmd_run(args: argparse.Namespace) -> int:
    """Runs each step in a fresh interpreter: export needs a different Keras backend."""
    started = time.perf_counter()
    stop_requested: list[int] = []
    for step in run_steps(args):
        logger.info("step %s", step[0])
        code = _call_passing_signals_on([sys.executable, "-m", "trainer", *step], stop_requested)
        if code == INTERRUPTED or stop_requested:
            logger.warning(
                "run stopped in step %s; the run directory keeps what the steps produced",
                step[0],
            )
            return INTERRUPTED
        if code != 0:
            logger.error(
                "step %s failed with exit code %d; the run directory keeps what the "
                "earlier steps produced",
                step[0],
                code,
            )
            return code
    print(f"run: done in {time.perf_counter() - started:.0f} s; bundle in {args.run / 'bundle'}")
    return 0


# A command stopped by SIGINT/SIGTERM after saving its work (128 + SIGINT, as shells say).
INTERRUPTED = 130


def _call_passing_signals_on(command: list[str], stop_requested: list[int]) -> int:
    """Runs a step, passing SIGINT and SIGTERM on to it rather than dying with them: the
    step (fit) stops cleanly and saves its work, and ``run`` starts no further step. A
    terminal's Ctrl-C reaches the step twice (from the terminal and from here) within a
    millisecond, which fit takes for one stop; ``kill`` of this process alone reaches it once."""
    child = subprocess.Popen(command)

    def pass_on(number: int, frame: object) -> None:
        stop_requested.append(number)
        child.send_signal(number)

    previous = {
        number: signal.signal(number, pass_on) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def cmd_audit(args: argparse.Namespace) -> int:
    from trainer.audit import (
        bundle_scorer,
        draw_issues,
        find_label_issues,
        format_summary,
        run_scorer,
        score_faces,
        summarise,
        write_audit,
    )

    if not 0 < args.min_probability < 1:
        raise ValueError("--min-probability must be between 0 and 1")
    if args.models and args.data is None:
        raise ValueError("--model bundles need the data set they were trained on")
    scorers = [bundle_scorer(args.data, path, args.threads) for path in args.models]
    scorers += [run_scorer(path) for path in args.runs]
    scores, mode = score_faces(scorers)
    issues = find_label_issues(scores, args.min_probability)
    summary = summarise(scores, issues, mode, args.min_probability)
    exclusion = write_audit(args.out, scores, issues, summary, [*args.models, *args.runs])
    if args.draw:
        draw_issues(scores, issues, args.draw, most=100)
    print(format_summary(summary))
    print(f"exclusion list: {exclusion}; every flagged face: {args.out / 'label-issues.csv'}")
    return 0


COMMANDS = {
    "prepare": cmd_prepare,
    "fit": cmd_fit,
    "calibrate": cmd_calibrate,
    "export": cmd_export,
    "evaluate": cmd_evaluate,
    "run": cmd_run,
    "shard": cmd_shard,
    "presets": cmd_presets,
    "audit": cmd_audit,
}

if __name__ == "__main__":
    sys.exit(main())
