"""The model bundle: ``model.tflite`` + ``labels.txt`` + ``manifest.json``, with load and verify.

A bundle carries everything the daemon must agree with to use a model: the input contract
(shape, dtype, quantization), the preprocessing parameters, the label order, and the sha256
of the model file. :func:`load_bundle` refuses a bundle whose files do not match its manifest,
and :meth:`ModelBundle.check_tensors` refuses one whose model does not match its contract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import BundleError
from edge.preprocess import PreprocessSpec

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.tflite"
LABELS_FILE = "labels.txt"
MANIFEST_FILE = "manifest.json"


class TensorContract(BaseModel):
    """Shape, dtype and affine quantization of one model tensor (scale 0 = not quantized)."""

    model_config = ConfigDict(extra="forbid")

    shape: list[int] = Field(min_length=1)
    dtype: Literal["float32", "uint8", "int8"]
    scale: float = 0.0
    zero_point: int = 0


class ModelFileInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A file of the bundle's own folder: deploy copies that folder, nothing outside it.
    file: str = Field(MODEL_FILE, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int


class PreprocessContract(BaseModel):
    """The :class:`edge.preprocess.PreprocessSpec` fields as recorded in the manifest."""

    model_config = ConfigDict(extra="forbid")

    size: int
    color: Literal["gray"] = "gray"
    margin: float
    scale: float
    offset: float

    def spec(self) -> PreprocessSpec:
        return PreprocessSpec(**self.model_dump())


class Manifest(BaseModel):
    """``manifest.json``: the contract between a trained model and every program that runs it."""

    # Newer trainers may add fields; old daemons ignore them rather than refuse the bundle.
    model_config = ConfigDict(extra="ignore")

    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    created: str
    model: ModelFileInfo
    labels: list[str] = Field(min_length=2)
    abstain_label: str | None = Field(
        default=None, description="label that means 'none of the target emotions'"
    )
    quantization: Literal["int8", "float32"]
    input: TensorContract
    output: TensorContract
    preprocess: PreprocessContract
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``<name>-<version>``: the directory name a deployed bundle lives under."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle on disk."""

    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model.file

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def preprocess(self) -> PreprocessSpec:
        return self.manifest.preprocess.spec()

    def check_tensors(self, input_actual: TensorContract, output_actual: TensorContract) -> None:
        """Raises :class:`BundleError` unless the model's real tensors match the manifest."""
        for role, expected, actual in (
            ("input", self.manifest.input, input_actual),
            ("output", self.manifest.output, output_actual),
        ):
            if list(actual.shape[1:]) != list(expected.shape[1:]) or actual.dtype != expected.dtype:
                raise BundleError(
                    f"{self.path}: model {role} is {actual.dtype}{actual.shape}, "
                    f"manifest says {expected.dtype}{expected.shape}"
                )
            if expected.scale and not _close(actual.scale, expected.scale):
                raise BundleError(
                    f"{self.path}: model {role} quantization scale {actual.scale} "
                    f"differs from the manifest's {expected.scale}"
                )
            if expected.scale and actual.zero_point != expected.zero_point:
                raise BundleError(
                    f"{self.path}: model {role} zero point {actual.zero_point} "
                    f"differs from the manifest's {expected.zero_point}"
                )


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-12)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_bundle(path: str | os.PathLike[str]) -> ModelBundle:
    """Loads and verifies a bundle directory.

    Checks that the manifest parses and is of a known format, that the model file exists and
    its sha256 and size match, that ``labels.txt`` lists the manifest's labels in the same
    order, and that the label count and input size agree with the tensor contracts.

    Raises:
        BundleError: with the path and the first mismatch found.
    """
    directory = Path(path)
    if directory.is_file() and (directory.parent / MANIFEST_FILE).is_file():
        # models/default/model.tflite for models/default: the bundle is the folder it is in.
        logger.info("%s is a file of the bundle %s; using the bundle", directory, directory.parent)
        directory = directory.parent
    if not directory.is_dir():
        raise BundleError(f"model bundle {directory} is not a directory")
    manifest_path = directory / MANIFEST_FILE
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{directory}: no {MANIFEST_FILE}; is this a model bundle?") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{manifest_path}: manifest must be a JSON object")
    declared = raw.get("format_version", FORMAT_VERSION)
    if isinstance(declared, str) and declared.isdigit():
        declared = int(declared)  # the model below reads "2" as 2 too
    # Anything but a number (null, "two") is left to the model's check, which names the key;
    # comparing it here raised TypeError, a traceback instead of a refused bundle.
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format {declared} is newer than this "
            f"daemon understands ({FORMAT_VERSION}); upgrade yuzug on the device"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise BundleError(f"{manifest_path}: invalid manifest key '{key}': {first['msg']}") from exc

    model_path = directory / manifest.model.file
    if not model_path.is_file():
        raise BundleError(f"{directory}: model file {manifest.model.file} is missing")
    actual_size = model_path.stat().st_size
    if actual_size != manifest.model.size_bytes:
        raise BundleError(
            f"{model_path}: size {actual_size} bytes, manifest says {manifest.model.size_bytes}; "
            "the file is truncated or was replaced"
        )
    actual_sha = sha256_file(model_path)
    if actual_sha != manifest.model.sha256:
        raise BundleError(
            f"{model_path}: sha256 {actual_sha[:12]}... does not match the manifest's "
            f"{manifest.model.sha256[:12]}...; the model was modified or corrupted"
        )

    labels_path = directory / LABELS_FILE
    try:
        file_labels = [
            line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()
        ]
    except (OSError, UnicodeDecodeError) as exc:  # a flipped bit on an SD card
        raise BundleError(f"{directory}: cannot read {LABELS_FILE}: {exc}") from exc
    file_labels = [label for label in file_labels if label]
    if file_labels != manifest.labels:
        raise BundleError(
            f"{labels_path}: labels {file_labels} differ from the manifest's {manifest.labels}"
        )
    classes = manifest.output.shape[-1]
    if classes != len(manifest.labels):
        raise BundleError(
            f"{directory}: the model has {classes} outputs but {len(manifest.labels)} labels"
        )
    if len(set(manifest.labels)) != len(manifest.labels):
        raise BundleError(f"{directory}: duplicate labels in {manifest.labels}")
    if manifest.abstain_label is not None and manifest.abstain_label not in manifest.labels:
        raise BundleError(
            f"{directory}: abstain label {manifest.abstain_label!r} is not one of the labels"
        )
    try:
        manifest.preprocess.spec()  # the ranges edge.preprocess needs (a positive scale, ...)
    except ValueError as exc:
        raise BundleError(f"{manifest_path}: invalid manifest key 'preprocess': {exc}") from exc
    size = manifest.preprocess.size
    if manifest.input.shape[1:3] != [size, size]:
        raise BundleError(
            f"{directory}: input shape {manifest.input.shape} does not match the "
            f"preprocess size {size}"
        )
    return ModelBundle(path=directory, manifest=manifest)


def write_bundle(
    directory: str | os.PathLike[str],
    model_bytes: bytes,
    *,
    name: str,
    version: str,
    labels: list[str],
    quantization: Literal["int8", "float32"],
    input_contract: TensorContract,
    output_contract: TensorContract,
    preprocess: PreprocessSpec,
    abstain_label: str | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
) -> ModelBundle:
    """Writes a bundle directory and returns it verified by :func:`load_bundle`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(model_bytes)
    (out / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    manifest = Manifest(
        name=name,
        version=version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model=ModelFileInfo(
            sha256=hashlib.sha256(model_bytes).hexdigest(), size_bytes=len(model_bytes)
        ),
        labels=labels,
        abstain_label=abstain_label,
        quantization=quantization,
        input=input_contract,
        output=output_contract,
        preprocess=PreprocessContract(**preprocess.to_dict()),
        training=training or {},
        metrics=metrics or {},
        versions=versions or {},
    )
    write_manifest(out, manifest)
    return load_bundle(out)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Replaces ``manifest.json`` atomically, so a reader never sees half a file."""
    target = directory / MANIFEST_FILE
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, target)


def update_metrics(bundle: ModelBundle, metrics: dict[str, Any]) -> ModelBundle:
    """Merges evaluation results into the manifest (the model file and its sha256 are unchanged)."""
    manifest = bundle.manifest.model_copy(deep=True)
    manifest.metrics.update(metrics)
    write_manifest(bundle.path, manifest)
    return load_bundle(bundle.path)
