"""The emotion classifier the daemon, ``yuzug-edge classify`` and the trainer's evaluation share.

It runs a verified bundle's model on crops made by :mod:`edge.preprocess`, quantizing and
dequantizing with the model's own parameters, and returns probabilities in label order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.bundle import ModelBundle
from edge.classify.interpreter import TFLiteModel
from edge.detect import Face, face_crops
from edge.errors import BundleError
from edge.personalize import apply_offsets
from edge.preprocess import PreprocessSpec, framing_margins, to_model_input


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    scores: dict[str, float]


class EmotionClassifier:
    """Classifies face crops with a TFLite model.

    Build it with :meth:`from_bundle` (the daemon's path: the model is checked against its
    manifest) or :meth:`from_model_file` (the trainer scoring a bare float ``.tflite``).

    ``flip_average`` also classifies each mirrored crop and averages the two: faces are close
    to symmetric, so this is test-time augmentation for twice the classification time.

    ``average_framings`` cuts each detected face twice (:meth:`face_crops`, with the margins of
    :func:`~edge.preprocess.framing_margins`); give ``framings`` to the probabilities to
    average each face's crops, again for twice the classification time.

    ``offsets``, when set, are one person's per-label offsets (:mod:`edge.personalize`), applied
    to every probability this classifier returns.
    """

    def __init__(
        self,
        model: TFLiteModel,
        labels: list[str],
        spec: PreprocessSpec,
        bundle: ModelBundle | None = None,
        flip_average: bool = False,
        average_framings: bool = False,
    ) -> None:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise BundleError(
                f"{model.path}: expected one input and one output tensor, got "
                f"{len(model.inputs)} and {len(model.outputs)}"
            )
        self.model = model
        self.labels = list(labels)
        self.spec = spec
        self.bundle = bundle
        self.flip_average = flip_average
        self.framing_margins = framing_margins(spec, average_framings)
        self.offsets: np.ndarray | None = None
        self._input = model.inputs[0]
        self._output = model.outputs[0]
        if self._output.contract.shape[-1] != len(self.labels):
            raise BundleError(
                f"{model.path}: {self._output.contract.shape[-1]} outputs for "
                f"{len(self.labels)} labels"
            )

    @classmethod
    def from_bundle(
        cls,
        bundle: ModelBundle,
        num_threads: int = 1,
        flip_average: bool = False,
        average_framings: bool = False,
    ) -> EmotionClassifier:
        """Loads a verified bundle's model and checks its tensors against the manifest.

        Raises:
            BundleError: when the model's tensors do not match the manifest's contract.
        """
        model = TFLiteModel(bundle.model_path, num_threads=num_threads)
        classifier = cls(
            model, bundle.labels, bundle.preprocess, bundle, flip_average, average_framings
        )
        bundle.check_tensors(classifier._input.contract, classifier._output.contract)
        return classifier

    @classmethod
    def from_model_file(
        cls,
        path: str | os.PathLike[str],
        labels: list[str],
        spec: PreprocessSpec,
        num_threads: int = 1,
        flip_average: bool = False,
    ) -> EmotionClassifier:
        model = TFLiteModel(path, num_threads=num_threads)
        return cls(model, labels, spec, flip_average=flip_average)

    @property
    def runtime(self) -> str:
        return self.model.runtime

    @property
    def framings(self) -> int:
        """How many crops :meth:`face_crops` cuts of each face."""
        return len(self.framing_margins)

    def face_crops(
        self, image: np.ndarray, faces: Sequence[Face], straighten: bool = True
    ) -> np.ndarray:
        """The crops of detected ``faces`` in ``image`` (:func:`edge.detect.face_crops`),
        :attr:`framings` of each, one face after another."""
        return face_crops(image, self.spec, faces, straighten, self.framing_margins)

    def probabilities(self, crops: np.ndarray, framings: int = 1) -> np.ndarray:
        """``(n * framings, size, size, 1)`` uint8 crops -> ``(n, classes)`` float32
        probabilities, with this person's offsets when set."""
        return self.personalized(self.own_probabilities(crops, framings))

    def own_probabilities(self, crops: np.ndarray, framings: int = 1) -> np.ndarray:
        """The model's own probabilities, without offsets: what personalization fits. Each run
        of ``framings`` crops is one face's (:meth:`face_crops`), averaged."""
        if crops.ndim == 3:
            crops = crops[np.newaxis]
        expected = (self.spec.size, self.spec.size, 1)
        if crops.shape[1:] != expected:
            raise ValueError(f"crops must be {expected}, got {crops.shape[1:]}")
        contract = self._input.contract
        tensor = to_model_input(
            crops, self.spec, self._input.dtype, contract.scale, contract.zero_point
        )
        out = self._run(tensor)
        if self.flip_average:
            out = (out + self._run(tensor[:, :, ::-1])) / 2
        if framings > 1:
            if len(out) % framings:
                raise ValueError(f"{len(out)} crops are not {framings} for each face")
            out = out.reshape(-1, framings, out.shape[-1]).mean(axis=1)
        return out

    def personalized(self, probabilities: np.ndarray) -> np.ndarray:
        """``probabilities`` with the offsets applied (unchanged when there are none)."""
        offsets = self.offsets  # read once: another thread may set or clear them
        return probabilities if offsets is None else apply_offsets(probabilities, offsets)

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        out = np.empty((len(tensor), len(self.labels)), np.float32)
        # The exported models have a fixed batch of 1: on a Pi there is rarely more than one
        # face, and a fixed shape lets XNNPACK plan once.
        for i in range(len(tensor)):
            (raw,) = self.model.run(np.ascontiguousarray(tensor[i : i + 1]))
            out[i] = self._dequantize(raw[0])
        return out

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        contract = self._output.contract
        if contract.scale:
            return (raw.astype(np.float32) - contract.zero_point) * np.float32(contract.scale)
        return raw.astype(np.float32)

    def predict(self, crops: np.ndarray, framings: int = 1) -> list[Prediction]:
        """Labels, confidences and per-label scores for a batch of crops (``framings`` of each
        face, as in :meth:`own_probabilities`)."""
        results = []
        for row in self.probabilities(crops, framings):
            best = int(np.argmax(row))
            results.append(
                Prediction(
                    label=self.labels[best],
                    confidence=float(row[best]),
                    scores={
                        label: round(float(p), 4) for label, p in zip(self.labels, row, strict=True)
                    },
                )
            )
        return results
