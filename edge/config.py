"""The daemon's typed configuration: one TOML file, validated once at start-up.

Every setting has a description and a default, unknown keys are errors (a typo fails at boot
with its key path, not at 3 a.m.), and secrets never live in the file: the MQTT password comes
from ``$YUZUG_MQTT_PASSWORD`` or the systemd credential ``mqtt_password``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from edge.errors import ConfigError
from edge.hours import parse_hours, within

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/yuzug/edge.toml")
PASSWORD_ENV = "YUZUG_MQTT_PASSWORD"
PASSWORD_CREDENTIAL = "mqtt_password"
DIARY_NAME = "mood-diary.json"
# The files the daemon (or `personalize`) writes: (section, key, name under systemd's
# $STATE_DIRECTORY when the key is not set). They need not exist before the first start.
STATE_FILES = (
    ("mqtt", "spool_file", "pending-events.jsonl"),
    ("mqtt", "pause_file", "privacy-pause"),
    ("classifier", "personal_file", "personal.json"),
    ("suggestions", "dismissed_file", "dismissed-suggestions.json"),
    ("diary", "file", DIARY_NAME),
)


DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Language = Literal["en", "tr"]  # the suggestion catalogues' and the live page's languages


def check_topic_prefix(value: str) -> str:
    """Refuses an MQTT topic prefix that would publish where nobody listens: topics are built
    as f"{prefix}/...", so an empty prefix or a trailing slash gives "/sensor/..." or
    "homeassistant//sensor/...", and a wildcard cannot be published to at all."""
    if not value or value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(
            "must be topic levels joined by '/', without a leading, trailing or doubled '/'"
        )
    if "#" in value or "+" in value:
        raise ValueError("must not contain the MQTT wildcards '#' or '+'")
    return value


def check_device_id(value: str) -> str:
    """Refuses a device id the daemon's config would refuse (it names topics and entities)."""
    if not re.fullmatch(DEVICE_ID_PATTERN, value):
        raise ValueError(
            f"device id {value!r}: use lowercase letters, digits, _ and -, starting with a "
            "letter or digit (63 at most), as the device's edge.toml must"
        )
    return value


class Strict(BaseModel):
    # protected_namespaces=(): pydantic before 2.10 warns at every start that the detector's
    # `model_path` "has conflict with protected namespace model_".
    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())


# Clockwise quarter turns of every frame, for a camera that is not mounted upright: BlazeFace
# finds fewer faces turned, and the classifier, trained on upright faces, misreads them.
Rotation = Literal[0, 90, 180, 270]


# A part of the picture: left, top, width and height as shares of the frame's width and height.
Region = tuple[float, float, float, float]


class TurnableCamera(Strict):
    rotation: Rotation = Field(
        0,
        description="clockwise degrees to turn each frame: 180 for a camera mounted upside "
        "down, 90 or 270 for one on its side (yuzug-edge doctor suggests it)",
    )
    ignore_regions: list[Region] = Field(
        default_factory=list,
        description="parts of the picture whose faces are not read: a TV, a poster, a photo "
        "on the wall; each [left, top, width, height] as shares of the frame (0-1), in the "
        "picture as turned by rotation, as the live view shows it (drawn there, hatched)",
    )

    @field_validator("ignore_regions")
    @classmethod
    def _check_regions(cls, regions: list[Region]) -> list[Region]:
        for index, (left, top, width, height) in enumerate(regions):
            if min(left, top) < 0 or min(width, height) <= 0:
                raise ValueError(
                    f"region {index} {[left, top, width, height]}: left and top are 0 or "
                    "more, width and height above 0 (shares of the frame)"
                )
            if left + width > 1 + 1e-9 or top + height > 1 + 1e-9:
                raise ValueError(
                    f"region {index} {[left, top, width, height]} reaches past the frame: "
                    "left + width and top + height are at most 1 (shares of the frame)"
                )
        return regions

    turn_check_seconds: float = Field(
        15.0,
        ge=0,
        description="how often the daemon asks whether the faces it sees look turned, and "
        "says so in the log, /healthz and the live page (four extra detections; 0: never)",
    )


class OpenCVCameraConfig(TurnableCamera):
    type: Literal["opencv"] = "opencv"
    source: int | str = Field(
        0, description="USB camera index, /dev/videoN, a video file, or an rtsp/http URL"
    )
    width: int = Field(640, gt=0, description="requested capture width (cameras only)")
    height: int = Field(480, gt=0, description="requested capture height (cameras only)")
    fps: float = Field(15.0, gt=0, description="requested camera frame rate")
    realtime: bool = Field(
        True, description="play a video file at its own frame rate; false = as fast as possible"
    )
    loop: bool = Field(False, description="restart a video file when it ends")

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("a camera index is 0 or more (0 is the first camera)")
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: give a camera index, /dev/videoN, a file or a URL")
        return value

    @property
    def source_kind(self) -> Literal["camera", "stream", "file"]:
        """A camera (an index or a /dev node), a network stream (RTSP, HTTP) or a video file."""
        source = self.source
        if isinstance(source, int) or re.fullmatch(r"\d+", source) or source.startswith("/dev/"):
            return "camera"
        return "stream" if "://" in source else "file"


class Picamera2CameraConfig(TurnableCamera):
    type: Literal["picamera2"] = "picamera2"
    width: int = Field(640, gt=0, description="main stream width (face crops)")
    height: int = Field(480, gt=0, description="main stream height")
    lores_width: int = Field(320, gt=0, description="lores YUV420 stream width (detection)")
    lores_height: int = Field(240, gt=0, description="lores stream height")
    fps: float = Field(15.0, gt=0, description="sensor frame rate")
    camera_index: int = Field(0, ge=0, description="which camera on a multi-camera Pi")


class FolderCameraConfig(TurnableCamera):
    type: Literal["folder"] = "folder"
    path: Path = Field(description="folder (recursive) or .zip of images, played in name order")
    fps: float = Field(5.0, gt=0, description="frames per second when realtime")
    realtime: bool = Field(True, description="pace at fps; false = as fast as possible")
    loop: bool = Field(False, description="start again after the last image")


CameraConfig = Annotated[
    OpenCVCameraConfig | Picamera2CameraConfig | FolderCameraConfig, Field(discriminator="type")
]


class BlazeFaceDetectorConfig(Strict):
    type: Literal["blazeface"] = "blazeface"
    min_score: float = Field(0.4, gt=0, lt=1, description="detection confidence threshold")
    min_size: int = Field(20, ge=1, description="smallest face side in pixels")
    num_threads: int = Field(1, ge=1, le=8, description="interpreter threads")
    tiles: bool = Field(
        True,
        description="when a frame shows no face near enough for one pass, look again in "
        "overlapping square tiles (6 in a 640x480 frame) for faces farther away, each confirmed "
        "by a closer look; a face found there is followed in one square around it on the next "
        "frames",
    )
    tile_fraction: float = Field(
        0.6,
        ge=0.2,
        le=1,
        description="the tiles' side as a share of the frame's shorter side: 0.6 finds 90% of "
        "faces 64 px wide in 640x480 (about 1.3 m away) and 46% at 48 px; 0.45 (12 tiles, "
        "about twice the cost on empty frames, more false faces in textures) 98% and 87% "
        "(bench/reach.py)",
    )


class HaarDetectorConfig(Strict):
    type: Literal["haar"] = "haar"
    scale_factor: float = Field(1.2, gt=1, description="cascade pyramid step")
    min_neighbors: int = Field(5, ge=0, description="overlapping hits needed for a face")
    min_size: int = Field(48, ge=1, description="smallest face side in pixels")


class YuNetDetectorConfig(Strict):
    type: Literal["yunet"] = "yunet"
    model_path: Path = Field(description="face_detection_yunet_2023mar.onnx from the OpenCV zoo")
    min_score: float = Field(0.7, gt=0, lt=1, description="detection confidence threshold")


DetectorConfig = Annotated[
    BlazeFaceDetectorConfig | HaarDetectorConfig | YuNetDetectorConfig,
    Field(discriminator="type"),
]


class ClassifierConfig(Strict):
    model: Path | None = Field(
        None,
        description="model bundle directory (a 'current' symlink is followed); "
        "default: the bundle shipped in models/default",
    )
    num_threads: int = Field(1, ge=1, le=8, description="LiteRT interpreter threads")
    flip_average: bool = Field(
        False,
        description="also classify the mirrored face and average the two: about one point "
        "more accuracy for twice the classification time",
    )
    average_framings: bool = Field(
        False,
        description="cut each face twice, with the model's margin and 0.1 tighter, and average "
        "the two: about one point more accuracy on faces found in camera frames (82.5% "
        "against 81.4%, bench/framing.py) for twice the classification time",
    )
    straighten_faces: bool = Field(
        True,
        description="turn a face that leans more than 15 degrees (a head on one side, a camera "
        "not quite level) level before classifying it, by the eyes the detector finds "
        "(blazeface, which takes a second, closer look at each face for them, on every fifth "
        "frame of it, and yunet; haar finds no eyes): 81% instead of 75% of faces leaning 30 "
        "degrees read right, 80% instead of 65% at 45; blazeface reads a face lying on its side "
        "or upside down under the quarter turn that stands it up (79% instead of 63% at 90 "
        "degrees, 78% instead of 32% at 180)",
    )
    max_faces: int = Field(3, ge=1, le=20, description="faces classified per frame, largest first")
    max_fps: float = Field(
        0.0, ge=0, description="upper bound on analysed frames per second; 0 = as fast as possible"
    )
    idle_fps: float = Field(
        2.0,
        ge=0,
        description="analysed frames per second while nobody is in view (no face for "
        "emotion.no_face_seconds), no fit is recording and nobody watches the live view: a face "
        "that comes is still found within 1/idle_fps seconds, at a fraction of the CPU and heat "
        "of full rate; 0 = always full rate",
    )
    personal_file: Path | None = Field(
        None,
        description="offsets fitted to one person by `yuzug-edge personalize`, applied when "
        "they were fitted for the model in use; default $STATE_DIRECTORY/personal.json under "
        "systemd, else none",
    )


class EmotionConfig(Strict):
    smoothing: float = Field(
        0.35, gt=0, le=1, description="EMA weight of the newest frame's scores"
    )
    min_confidence: float = Field(
        0.5, gt=0, lt=1, description="smoothed confidence needed before an emotion is reported"
    )
    stable_seconds: float = Field(
        1.5, ge=0, description="how long a new emotion must hold before it becomes an event"
    )
    no_face_seconds: float = Field(
        3.0, ge=0, description="how long without a face before the state becomes no_face"
    )
    track_iou: float = Field(0.3, gt=0, lt=1, description="box overlap that continues a track")
    track_timeout_seconds: float = Field(
        1.0, gt=0, description="a track unseen this long is forgotten"
    )


class SuggestionsConfig(Strict):
    language: Language = Field("en", description="catalogue language")
    catalogue: Path | None = Field(
        None, description="user catalogue (TOML or JSON) replacing the built-in one"
    )
    cooldown_seconds: float = Field(
        300.0, ge=0, description="minimum time between two suggestions for the same emotion"
    )
    dismissed_file: Path | None = Field(
        None,
        description="the suggestions a person said are not for them, never suggested again; "
        "default $STATE_DIRECTORY/dismissed-suggestions.json under systemd, else kept until "
        "the daemon stops",
    )


class DiaryConfig(Strict):
    enabled: bool = Field(
        True,
        description="keep how long each emotion was seen per day (durations only: no picture, "
        "score or time of day) for the live page and Home Assistant",
    )
    file: Path | None = Field(
        None,
        description="where the diary is kept; default $STATE_DIRECTORY/mood-diary.json under "
        "systemd, else memory only",
    )
    keep_days: int = Field(60, ge=1, le=3660, description="days kept; older ones are dropped")


CLOCK_SET_AFTER = 1_735_689_600  # 2025-01-01 UTC: a wall clock before it has not been set
CLOCK_NOT_SET = " (the clock is not set yet)"  # after the spans closed_at names while it is not


class PrivacyConfig(Strict):
    off_hours: list[str] = Field(
        default_factory=list,
        description="local hours when the camera stays closed whatever the privacy switch "
        'says, such as ["22-7"] (from-to, the end hour excluded; a span may wrap past midnight)',
    )

    @field_validator("off_hours")
    @classmethod
    def _check_off_hours(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_hours(text)  # its ValueError names the span and what is wrong
        return value

    def closed_at(self, now: float) -> str | None:
        """What keeps the camera closed at wall-clock time ``now``: the span holding then, or
        all of them while the clock has not been set; ``None`` when it may be open."""
        if not self.off_hours:
            return None
        if now < CLOCK_SET_AFTER:
            # A Pi has no battery-backed clock: until NTP sets it the hour is unknown, and a
            # bedroom camera must not open at night because the clock says 1970.
            return f"{', '.join(self.off_hours)}{CLOCK_NOT_SET}"
        hour = time.localtime(now).tm_hour
        return next((text for text in self.off_hours if within(hour, parse_hours(text))), None)


class MQTTConfig(Strict):
    enabled: bool = Field(True, description="publish over MQTT")
    host: str = Field("localhost", min_length=1, description="broker host name or address")
    port: int = Field(1883, gt=0, lt=65536, description="broker port (8883 is usual for TLS)")
    username: str | None = Field(None, description="broker user; password from the environment")
    password: SecretStr | None = Field(
        None,
        description="do not set here: use $YUZUG_MQTT_PASSWORD or the mqtt_password "
        "systemd credential; accepted for tests only and warned about",
    )
    client_id: str | None = Field(None, description="MQTT client id; default yuzug-<device_id>")
    topic_prefix: str = Field("yuzug", description="root of YUZUG topics")
    discovery: bool = Field(True, description="publish Home Assistant MQTT discovery")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant discovery prefix")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds")
    tls: bool = Field(False, description="connect with TLS")
    ca_file: Path | None = Field(None, description="CA bundle for the broker's certificate")
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="client key (mutual TLS)")
    tls_insecure: bool = Field(False, description="skip host-name check (self-signed labs)")
    queue_limit: int = Field(
        1000, ge=10, description="events held while the broker is away; older ones are dropped"
    )
    stats_interval_seconds: float = Field(30.0, gt=0, description="period of the stats topic")
    reconnect_min_seconds: float = Field(1.0, gt=0, description="first reconnect delay")
    reconnect_max_seconds: float = Field(60.0, gt=0, description="longest reconnect delay")
    spool_file: Path | None = Field(
        None,
        description="queued events are also kept here, so a restart or power cut loses none; "
        "default $STATE_DIRECTORY/pending-events.jsonl under systemd, else memory only",
    )
    pause_file: Path | None = Field(
        None,
        description="the privacy switch's position is kept here, so a restart or power cut "
        "never turns a paused camera back on; default $STATE_DIRECTORY/privacy-pause under "
        "systemd, else memory only",
    )

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @model_validator(mode="after")
    def _check_tls(self) -> MQTTConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("ca_file/cert_file given but tls is false")
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise ValueError("reconnect_max_seconds is below reconnect_min_seconds")
        return self


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class HTTPConfig(Strict):
    enabled: bool = Field(False, description="serve the live view, /healthz and /metrics")
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes it on the LAN")
    port: int = Field(8080, ge=0, lt=65536, description="port (0 picks a free one)")
    username: str | None = Field(
        None,
        description="require HTTP basic auth with this user; password from "
        "$YUZUG_HTTP_PASSWORD or the http_password credential",
    )
    token: SecretStr | None = Field(
        None,
        description="do not set here: $YUZUG_HTTP_TOKEN or the http_token credential; "
        "when set, requests need 'Authorization: Bearer <token>' or ?token=<token>",
    )
    password: SecretStr | None = Field(None, description="see username")
    stream_fps: float = Field(10.0, gt=0, le=30, description="live view frame rate")
    stream_quality: int = Field(70, ge=10, le=95, description="live view JPEG quality")
    max_viewers: int = Field(
        4, ge=1, le=64, description="live streams served at once; more get 503 (a Pi's CPU)"
    )
    history_minutes: float = Field(
        10.0, gt=0, le=180, description="how far back the live page's mood timeline goes"
    )
    language: Language | None = Field(
        None, description="the live page's language; default suggestions.language"
    )
    public_url: str | None = Field(
        None,
        description="where other machines open the live view, linked from the Home Assistant "
        "device page; default http://<hostname>.local:<port>/ when host is not loopback",
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _check_exposure(self) -> HTTPConfig:
        if self.host not in LOOPBACK_HOSTS and not (self.token or self.username):
            logger.warning(
                "http.host %s exposes the live view without authentication; set "
                "http.username or $YUZUG_HTTP_TOKEN",
                self.host,
            )
        return self


def live_view_url(http: HTTPConfig, port: int, hostname: str | None = None) -> str | None:
    """Where other machines open the live view: ``http.public_url``, else the bound address,
    or for a wildcard bind this host's mDNS name (``<hostname>.local``, which Raspberry Pi OS
    announces); ``None`` when the view is off or on loopback only."""
    if not http.enabled:
        return None
    if http.public_url:
        return http.public_url
    if http.host in LOOPBACK_HOSTS:
        return None
    import socket

    name = http.host
    if name in ("0.0.0.0", "::", ""):
        name = f"{(hostname or socket.gethostname()).split('.')[0]}.local"
    return f"http://{f'[{name}]' if ':' in name else name}:{port}/"


class EdgeConfig(Strict):
    device_id: str = Field(
        "yuzug",
        pattern=DEVICE_ID_PATTERN,
        description="this device's name in topics and Home Assistant (lowercase, digits, _ -)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    camera: CameraConfig = Field(default_factory=OpenCVCameraConfig)
    detector: DetectorConfig = Field(default_factory=BlazeFaceDetectorConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    emotion: EmotionConfig = Field(default_factory=EmotionConfig)
    suggestions: SuggestionsConfig = Field(default_factory=SuggestionsConfig)
    diary: DiaryConfig = Field(default_factory=DiaryConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig)
    http: HTTPConfig = Field(default_factory=HTTPConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_types(cls, data: Any) -> Any:
        # A [camera] or [detector] table without `type` means the default kind, as a missing
        # table does (pydantic would say "Unable to extract tag using discriminator 'type'").
        if isinstance(data, dict):
            for section, kind in (("camera", "opencv"), ("detector", "blazeface")):
                table = data.get(section)
                if isinstance(table, dict) and "type" not in table:
                    data = {**data, section: {"type": kind, **table}}
        return data


def format_broker(host: str, port: int) -> str:
    """``host:port`` as :func:`parse_broker` reads it back (``[v6]:port`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_broker(text: str, default_port: int = 1883) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port).

    Every ``--broker`` option and inventory entry goes through this one parser, so a typo is
    one clear ``ValueError`` (argparse and pydantic both turn it into a message naming the
    option or key) rather than a traceback deep in a command.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not host[:port] ([IPv6]:port for an IPv6 address)")
        port_text = rest[1:]
    elif text.count(":") > 1:  # a bare IPv6 address: no port can be told apart
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"{text!r} is not host[:port] nor an IPv6 address") from None
        host, port_text = text, ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"{text!r} names no host; expected host[:port]")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} of {text!r} is not a number from 1 to 65535")
    return host, int(port_text)


UNION_SECTIONS = ("camera", "detector")
UNION_TAGS = ("opencv", "picamera2", "folder", "blazeface", "haar", "yunet")


def describe_validation_error(
    exc: ValidationError, source: str, what: str = "configuration"
) -> str:
    """Every invalid key of a config file, dotted (``camera.fps``), with why and the value."""
    lines = [f"{source}: invalid {what}"]
    for error in exc.errors():
        # Drop pydantic's union-member tags ("camera.opencv.fps" -> "camera.fps").
        parts: list[str] = []
        for part in map(str, error["loc"]):
            if part.startswith("function-") or (parts and parts[-1] in UNION_SECTIONS):
                if part.startswith("function-") or part in UNION_TAGS:
                    continue
            parts.append(part)
        key = ".".join(parts) or "(top level)"
        value = error.get("input")
        shown = "" if isinstance(value, dict) or "password" in key else f" (got {value!r})"
        lines.append(f"  {key}: {error['msg']}{shown}")
    return "\n".join(lines)


def unreadable(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be opened for reading (the system's reason), or ``None`` if it can:
    for files a tool reads later (a CA bundle), checked when the user names them."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def state_directory(environ: dict[str, str] | None = None) -> Path | None:
    """``$STATE_DIRECTORY`` under systemd (the unit's ``StateDirectory=``; its first folder)."""
    state = (os.environ if environ is None else environ).get("STATE_DIRECTORY", "")
    first = state.split(":")[0]
    return Path(first) if first else None


def default_state_path(name: str, environ: dict[str, str] | None = None) -> Path | None:
    """``$STATE_DIRECTORY/<name>`` under systemd."""
    folder = state_directory(environ)
    return folder / name if folder else None


def missing_files(config: EdgeConfig) -> list[str]:
    """The config's file paths that do not exist on this machine, each as ``key: path``
    (a config checked on a workstation before it goes to the Pi may rightly name some)."""
    missing = []
    for section_name in EdgeConfig.model_fields:
        section = getattr(config, section_name)
        if not isinstance(section, BaseModel):
            continue
        for key in type(section).model_fields:
            value = getattr(section, key)
            if isinstance(section, OpenCVCameraConfig) and key == "source":
                # Only a video file: the camera check says what a camera or a URL does.
                value = Path(value) if section.source_kind == "file" else None
            if any((section_name, key) == (section, name) for section, name, _ in STATE_FILES):
                continue  # written by the daemon or `personalize`: it need not exist yet
            if isinstance(value, Path) and not value.exists():
                missing.append(f"{section_name}.{key}: {value}")
    return missing


def read_secret_password(environ: dict[str, str] | None = None) -> str | None:
    """The MQTT password from ``$YUZUG_MQTT_PASSWORD`` or ``$CREDENTIALS_DIRECTORY``."""
    return read_secret(PASSWORD_ENV, PASSWORD_CREDENTIAL, environ)


def read_secret(
    variable: str, credential: str, environ: dict[str, str] | None = None
) -> str | None:
    """A secret from an environment variable, else from a systemd credential file; an empty
    one is no secret.

    Empty is how ``deploy/install.sh`` leaves the MQTT password for an anonymous broker: the
    unit's ``LoadCredential=`` needs the file to exist, and an empty password would be refused
    as "a password without mqtt.username" by the service alone (not by a check run by hand).
    """
    env = os.environ if environ is None else environ
    if env.get(variable):
        return env[variable]
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        path = Path(credentials) / credential
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n") or None
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read systemd credential {path}: {exc}") from exc
    return None


def validate_schema(data: dict[str, Any], source: str = "config") -> EdgeConfig:
    """The file's keys and values alone, without this machine's secrets or files (a config
    checked on a workstation before it goes to a Pi).

    Raises:
        ConfigError: naming every invalid key and why.
    """
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None


def parse_config(
    data: dict[str, Any], source: str = "config", environ: dict[str, str] | None = None
) -> EdgeConfig:
    """Validates a config mapping and fills the secret from the environment.

    Raises:
        ConfigError: naming every invalid key and why.
    """
    config = validate_schema(data, source)
    secret = read_secret_password(environ)
    if secret is not None:
        config.mqtt.password = SecretStr(secret)
    for section_name, key, name in STATE_FILES:
        section = getattr(config, section_name)
        if getattr(section, key) is None:
            setattr(section, key, default_state_path(name, environ))
    if config.mqtt.password is not None and not config.mqtt.username:
        raise ConfigError(f"{source}: mqtt.username is required when a password is given")
    for field_name, variable, credential in (
        ("token", "YUZUG_HTTP_TOKEN", "http_token"),
        ("password", "YUZUG_HTTP_PASSWORD", "http_password"),
    ):
        value = read_secret(variable, credential, environ)
        if value is not None:
            setattr(config.http, field_name, SecretStr(value))
    if config.http.username and config.http.password is None:
        raise ConfigError(
            f"{source}: http.username needs $YUZUG_HTTP_PASSWORD or the http_password credential"
        )
    return config


def load_config(
    path: str | os.PathLike[str] | None, environ: dict[str, str] | None = None
) -> EdgeConfig:
    """Reads and validates a TOML file; ``None`` gives the defaults (plus the environment).

    Raises:
        ConfigError: for a missing or unreadable file, bad TOML, or invalid values.
    """
    if path is None:
        return parse_config({}, "defaults", environ)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    config = parse_config(data, str(file), environ)
    if "password" in data.get("mqtt", {}):
        logger.warning(
            "%s: mqtt.password is set in the file; prefer $%s or the %s systemd credential",
            file,
            PASSWORD_ENV,
            PASSWORD_CREDENTIAL,
        )
        mode = file.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            logger.warning(
                "%s holds mqtt.password and is readable by other users (mode %o); chmod 600 it",
                file,
                stat.S_IMODE(mode),
            )
    return config


_URL_PASSWORD = re.compile(r"(://[^/@:\s]*):[^/@\s]*@")


def hide_url_password(text: str) -> str:
    """``rtsp://admin:secret@cam/stream`` -> ``rtsp://admin:********@cam/stream``: an IP
    camera's URL carries its password, and the URL goes into logs, errors and doctor's report."""
    return _URL_PASSWORD.sub(r"\1:********@", text)


def redacted(config: EdgeConfig) -> dict[str, Any]:
    """The config as a dict for logs and ``validate-config``, with the passwords hidden."""
    data = config.model_dump(mode="json")
    for section, key in (("mqtt", "password"), ("http", "token"), ("http", "password")):
        if data[section].get(key) is not None:
            data[section][key] = "********"
    if isinstance(data["camera"].get("source"), str):
        data["camera"]["source"] = hide_url_password(data["camera"]["source"])
    return data
