"""``yuzug-edge``: the device-side commands.

* ``run``: the daemon (camera -> faces -> emotions -> MQTT).
* ``validate-config``: check a config file and print it with secrets hidden.
* ``classify``: the original system's static-image test, one JSON line per image.
* ``watch``: subscribe and print a device's events and state readably.
* ``demo``: the whole loop on a fresh machine, no camera or broker needed.
* ``personalize``: fit the model's decisions to one person from a few seconds of each face.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.cli import (
    TerminalProgress,
    add_mqtt_login_arguments,
    broker_argument,
    checked_argument,
    log_level_argument,
    mqtt_login,
    number_argument,
    topic_prefix_argument,
)
from edge.config import check_device_id, parse_broker
from edge.errors import YuzugError
from edge.log import setup_logging

logger = logging.getLogger("edge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yuzug-edge", description="YUZUG edge daemon and tools")
    parser.add_argument(
        "--log-level", type=log_level_argument, default=None, help="DEBUG, INFO, WARNING or ERROR"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser("classify", help="classify faces in images (JSON lines)")
    classify.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="image, folder of images (recursive) or .zip of images",
    )
    classify.add_argument("--model", type=Path, help="bundle directory (default: models/default)")
    classify.add_argument(
        "--no-detect", action="store_true", help="treat each whole image as one face crop"
    )
    classify.add_argument(
        "--threads",
        type=number_argument("--threads", int, at_least=1),
        default=1,
        help="LiteRT threads (default 1)",
    )
    classify.add_argument(
        "--flip-average",
        action="store_true",
        help="also classify each mirrored face and average (slower, a little more accurate)",
    )
    classify.add_argument(
        "--average-framings",
        action="store_true",
        help="cut each detected face twice (the model's margin and 0.1 tighter) and average "
        "(slower, a little more accurate on photos; not with --no-detect)",
    )
    classify.add_argument(
        "--personal",
        type=Path,
        metavar="FILE",
        help="apply one person's offsets from `yuzug-edge personalize` (fitted for this model)",
    )
    classify.add_argument(
        "--annotate",
        type=Path,
        metavar="DIR",
        help="also write each image with its face boxes, labels and confidences drawn, as "
        "DIR/<name>.jpg (its path is the record's 'annotated')",
    )

    watch = commands.add_parser("watch", help="print a device's MQTT events and state")
    watch.add_argument(
        "--config",
        type=Path,
        help="a daemon's config file: watch its broker (user, TLS; password from "
        "$YUZUG_MQTT_PASSWORD), topic prefix and device",
    )
    watch.add_argument("--broker", type=broker_argument, help="host[:port] (default: localhost)")
    add_mqtt_login_arguments(watch)
    watch.add_argument(
        "--device",
        type=checked_argument(lambda text: text == "+" or check_device_id(text)),
        help="device id (default: the config's, else all)",
    )
    watch.add_argument(
        "--prefix",
        type=topic_prefix_argument,
        help="topic prefix (default: the config's, else yuzug)",
    )
    watch.add_argument("--json", action="store_true", help="print raw JSON lines")
    watch.add_argument(
        "--seconds",
        type=number_argument("--seconds", at_least=0),
        default=0,
        help="stop after this long (0: until Ctrl-C)",
    )

    demo = commands.add_parser("demo", help="the whole loop with sample faces and a broker")
    demo.add_argument("--data", type=Path, help="FER2013-layout zip for the sample faces")
    demo.add_argument("--camera", help="use this camera (index or URL) instead of samples")
    demo.add_argument(
        "--broker",
        type=broker_argument,
        help="host[:port] (default: localhost:1883, else embedded)",
    )
    demo.add_argument("--model", type=Path, help="bundle directory (default: models/default)")
    demo.add_argument("--language", choices=("en", "tr"), default="en")
    demo.add_argument("--fps", type=number_argument("--fps", above=0), default=15.0)

    for name, text in (
        ("run", "run the daemon"),
        ("validate-config", "check a config file"),
        ("doctor", "check config, model, camera, broker and port on this device"),
    ):
        sub = commands.add_parser(name, help=text)
        add_device_arguments(sub)
        sub.add_argument("--broker", type=broker_argument, help="override mqtt host[:port]")
        sub.add_argument(
            "--personal",
            type=Path,
            metavar="FILE",
            help="override classifier.personal_file: one person's offsets (yuzug-edge "
            "personalize, or the live page's 'fit to you', which writes it)",
        )
        if name == "doctor":
            sub.add_argument(
                "--timeout",
                type=number_argument("--timeout", above=0),
                default=10.0,
                help="seconds each of the camera and broker checks may take (default 10)",
            )
            sub.add_argument(
                "--while-running",
                action="store_true",
                help="beside a running daemon: leave the camera and the live-view port to it "
                "(yuzug-deploy doctor uses this)",
            )
        if name == "run":
            sub.add_argument(
                "--live-view",
                type=number_argument("--live-view", int, at_least=0),
                metavar="PORT",
                help="serve the live page on 127.0.0.1:PORT (http.enabled and http.port; "
                "0 picks a free port)",
            )
            sub.add_argument(
                "--max-frames",
                type=number_argument("--max-frames", int, at_least=0),
                default=0,
                help="stop after this many analysed frames (0: run until stopped)",
            )
    diary = commands.add_parser("diary", help="print the mood diary: each day's emotions")
    diary.add_argument("--config", type=Path, help="TOML config whose diary.file to read")
    diary.add_argument(
        "--file",
        type=Path,
        help="the diary file (default: the config's diary.file, else the service's "
        "/var/lib/yuzug-edge/mood-diary.json)",
    )
    diary.add_argument(
        "--days", type=number_argument("--days", int, above=0), default=14, help="(default 14)"
    )
    diary.add_argument("--json", action="store_true", help="one JSON object per day")
    personal = commands.add_parser(
        "personalize", help="fit the model to one person: record each expression for seconds"
    )
    add_device_arguments(personal)
    personal.add_argument(
        "--out",
        type=Path,
        help="the file to write (default: the config's classifier.personal_file); recordings "
        "already in it for the same model are kept unless recorded again",
    )
    personal.add_argument(
        "--labels",
        type=lambda text: [label.strip() for label in text.split(",") if label.strip()],
        help="comma-separated labels to record (default: the relaxed face, then every emotion)",
    )
    personal.add_argument(
        "--seconds",
        type=number_argument("--seconds", above=0),
        default=8.0,
        help="recording time per label (default 8)",
    )
    personal.add_argument(
        "--countdown",
        type=number_argument("--countdown", at_least=0),
        default=3.0,
        help="seconds to get ready before each recording (default 3)",
    )
    personal.add_argument(
        "--reset", action="store_true", help="forget the file's earlier recordings"
    )
    return parser


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """The config file and the camera and model overrides every command on a device takes."""
    parser.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    parser.add_argument("--source", help="override camera: index, video file, URL or folder")
    parser.add_argument("--model", type=Path, help="override classifier.model")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    try:
        return COMMANDS[args.command](args)
    except YuzugError as exc:
        logger.error("%s", exc)
        return 2


def _iter_images(paths: list[Path]) -> Iterator[tuple[str, Any, str | None]]:
    from edge.imagefiles import iter_decoded, list_images

    for path in paths:
        try:
            entries = list_images(path)
        except (OSError, ValueError) as exc:  # missing path, bad zip
            yield str(path), None, str(exc)
            continue
        if not entries:
            yield str(path), None, "no images found"
        for entry, image, error in iter_decoded(entries):
            yield entry.path, image, error


def cmd_classify(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from edge.bundle import load_bundle
    from edge.classify.emotion import EmotionClassifier
    from edge.config import BlazeFaceDetectorConfig
    from edge.detect import make_detector
    from edge.models import default_bundle_path
    from edge.preprocess import preprocess_face

    bundle = load_bundle(args.model or default_bundle_path())
    classifier = EmotionClassifier.from_bundle(
        bundle,
        num_threads=args.threads,
        flip_average=args.flip_average,
        average_framings=args.average_framings,
    )
    if args.personal:
        from edge.personalize import load_personalization

        classifier.offsets = load_personalization(args.personal).offsets_for(bundle)
    detector = None if args.no_detect else make_detector(BlazeFaceDetectorConfig())
    if args.annotate:
        try:
            args.annotate.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise YuzugError(
                f"--annotate: cannot create {args.annotate} ({exc.strerror})"
            ) from None
    written: set[str] = set()
    counts = {"images": 0, "faces": 0, "errors": 0, "failed": 0}
    progress = TerminalProgress("classify", sys.stderr)
    for done, (path, image, error) in enumerate(_iter_images(args.paths)):
        progress.update(done, "images")
        record: dict[str, Any] = {"path": path}
        if image is None:
            record["error"] = error
            counts["errors"] += 1
            print(json.dumps(record), flush=True)
            continue
        height, width = image.shape[:2]
        try:
            if detector is None:
                boxes, rolls, framings = [(0, 0, width, height)], [0.0], 1
                crops = preprocess_face(image, classifier.spec)[np.newaxis]
            else:
                found = detector.detect(image)
                boxes, rolls = [face.box for face in found], [face.roll for face in found]
                crops, framings = classifier.face_crops(image, found), classifier.framings
            predictions = classifier.predict(crops, framings) if len(boxes) else []
        except (cv2.error, ValueError) as exc:
            # One odd image (a shape no step expected) is its own error line, not the run's end.
            logger.warning("%s: could not classify", path, exc_info=True)
            record["error"] = f"could not classify: {str(exc).strip().splitlines()[-1]}"
            counts["failed"] += 1
            print(json.dumps(record), flush=True)
            continue
        record["faces"] = [
            {
                "box": list(box),
                "label": p.label,
                "confidence": round(p.confidence, 4),
                "scores": p.scores,
            }
            for box, p in zip(boxes, predictions, strict=True)
        ]
        if args.annotate:
            record["annotated"] = _write_annotated(
                args.annotate, path, image, record, rolls, written
            )
        counts["images"] += 1
        counts["faces"] += len(record["faces"])
        print(json.dumps(record), flush=True)
    progress.close()
    # On stderr, so that stdout stays one JSON object a line.
    images, faces = counts["images"], counts["faces"]
    print(
        f"classify: {images} image{'' if images == 1 else 's'}, {faces} "
        f"face{'' if faces == 1 else 's'}, {counts['errors']} unreadable"
        + (f", {counts['failed']} failed" if counts["failed"] else "")
        + (f"; pictures in {args.annotate}" if args.annotate else ""),
        file=sys.stderr,
    )
    return 0


def _write_annotated(
    folder: Path,
    path: str,
    image: Any,
    record: dict[str, Any],
    rolls: list[float],
    written: set[str],
) -> str:
    """Draws the record's faces (each leaning its ``rolls``) on the image and writes it under a
    name made from its path (folders and zip members flattened, made unique); returns the file
    written."""
    import re

    import cv2

    from edge.overlay import draw_face, to_canvas

    canvas = to_canvas(image)
    # A 48x48 data-set crop is enlarged so that its label stays readable beside the face.
    zoom = min(8, max(1, -(-240 // max(1, min(canvas.shape[:2])))))
    if zoom > 1:
        canvas = cv2.resize(canvas, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    for face, roll in zip(record["faces"], rolls, strict=True):
        box = tuple(v * zoom for v in face["box"])
        draw_face(canvas, box, face["label"], face["confidence"], roll)  # type: ignore[arg-type]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).with_suffix("").as_posix()).strip("._")
    stem = stem[-180:]  # a deep path would pass the 255-byte file-name limit; its end differs
    name, copy = f"{stem or 'image'}.jpg", 1
    while name in written:
        copy += 1
        name = f"{stem}-{copy}.jpg"
    written.add(name)
    target = folder / name
    if not cv2.imwrite(str(target), canvas):
        raise YuzugError(f"--annotate: cannot write {target}")
    return str(target)


def cmd_validate_config(args: argparse.Namespace) -> int:
    from edge.app import resolve_config
    from edge.config import missing_files, redacted

    config = resolve_config(args)
    print(json.dumps(redacted(config), indent=2))
    missing = missing_files(config)
    for line in missing:
        print(f"warning: {line} does not exist on this machine", file=sys.stderr)
    note = f" ({len(missing)} file{'s' if len(missing) > 1 else ''} not here)" if missing else ""
    print(f"configuration is valid{note}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.app import EdgeApp, resolve_config
    from edge.config import state_directory
    from edge.restore import apply_staged_restore

    config = resolve_config(args)
    if args.log_level is None:
        setup_logging(config.log_level)
    state = state_directory()
    if state is not None:  # under systemd: a backup staged by `yuzug-deploy restore`
        try:
            apply_staged_restore(state)
        except OSError as exc:  # the daemon still starts, on what the folder holds
            logger.error("could not put the staged backup in place: %s", exc)
    return EdgeApp(config).run(max_frames=args.max_frames)


def cmd_watch(args: argparse.Namespace) -> int:
    from edge.config import MQTTConfig, load_config
    from edge.watch import run_watch

    config = load_config(args.config) if args.config else None
    base = config.mqtt if config else MQTTConfig()
    host, port = parse_broker(args.broker) if args.broker else (base.host, base.port)
    broker = mqtt_login(host, port, args.mqtt_username, args.mqtt_tls, args.mqtt_ca_file, base=base)
    prefix = args.prefix or broker.topic_prefix
    device = args.device or (config.device_id if config else "+")
    return run_watch(broker, prefix, device, args.json, args.seconds)


def cmd_diary(args: argparse.Namespace) -> int:
    from datetime import date

    from edge.config import DIARY_NAME, load_config
    from edge.diary import format_day, read_days, recent_days

    configured = load_config(args.config).diary.file if args.config else None
    path = args.file or configured or SERVICE_STATE / DIARY_NAME
    try:
        days = recent_days(read_days(path), date.today(), args.days)
    except FileNotFoundError:
        raise YuzugError(
            f"no mood diary at {path}: the daemon writes it once a minute while it runs "
            "(diary.file; --file names another)"
        ) from None
    except (OSError, ValueError) as exc:
        raise YuzugError(f"cannot read the mood diary {path}: {exc}") from None
    for day in days:
        print(json.dumps(day) if args.json else format_day(day))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(args.data, args.camera, args.broker, args.model, args.language, args.fps)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.doctor import run_doctor

    if args.log_level is None:  # its own lines say what was found; INFO logs would interleave
        logging.getLogger().setLevel(logging.WARNING)
    return run_doctor(args, sys.stdout, timeout=args.timeout)


def cmd_personalize(args: argparse.Namespace) -> int:
    from edge.personalize import run_personalize

    return run_personalize(args, sys.stdout)


# The systemd unit's StateDirectory=, which a shell on the device does not have in its environment.
SERVICE_STATE = Path("/var/lib/yuzug-edge")

COMMANDS = {
    "personalize": cmd_personalize,
    "diary": cmd_diary,
    "doctor": cmd_doctor,
    "watch": cmd_watch,
    "demo": cmd_demo,
    "classify": cmd_classify,
    "validate-config": cmd_validate_config,
    "run": cmd_run,
}

if __name__ == "__main__":
    sys.exit(main())
