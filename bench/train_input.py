"""Does the input pipeline keep the accelerator busy? Step time with real data vs synthetic.

    KERAS_BACKEND=jax python bench/train_input.py --run runs/default-cpu [--preset default]

Measures, for the preset's batch:
- the input pipeline alone: in-memory batches with augmentation on the host and on the device
  (``--augment-on device``), and tar-shard batches (PNG decode + edge.preprocess +
  augmentation), in batches/s;
- a compiled training step on synthetic batches (no input cost) and on real batches.
Run it on the machine you train on; on a GPU the step is the part that shrinks.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import emit  # noqa: E402
from trainer.data import PreparedData  # noqa: E402
from trainer.presets import get_preset  # noqa: E402
from trainer.shards import ShardBatches, write_shards  # noqa: E402
from trainer.train import TrainBatches, make_optimizer  # noqa: E402


def rate(source: keras.utils.PyDataset, batches: int) -> float:
    # Device batches are computed asynchronously: wait for each, as a training step would.
    jax.block_until_ready(source[0])
    started = time.perf_counter()
    for index in range(1, batches + 1):
        jax.block_until_ready(source[index % len(source)])
    return batches / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run directory with data.npz")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = PreparedData.load(args.run / "data.npz")
    preset = get_preset(args.preset)
    results = {
        "preset": preset.name,
        "batch": preset.batch_size,
        "devices": [str(d) for d in jax.devices()],
    }
    memory = TrainBatches(data, preset, 0, None)
    results["input_in_memory_batches_per_s"] = round(rate(memory, args.batches), 1)
    on_device = TrainBatches(data, preset.with_overrides(augment_on="device"), 0, None)
    results["input_in_memory_device_augment_batches_per_s"] = round(
        rate(on_device, args.batches), 1
    )
    with tempfile.TemporaryDirectory() as shard_dir:
        small = PreparedData(
            data.classes,
            data.spec,
            {k: v[:4000] for k, v in data.x.items()},
            {k: v[:4000] for k, v in data.y.items()},
            data.fingerprint,
        )
        write_shards(small, Path(shard_dir), shard_size=1000)
        shards = ShardBatches(Path(shard_dir), preset, 0, None, shuffle_buffer=512)
        results["input_shards_batches_per_s"] = round(
            rate(shards, min(args.batches, len(shards) - 1)), 1
        )
    model = preset.build()(preset.input_size, len(data.classes))
    model.compile(optimizer=make_optimizer(preset, 100, 1), loss="categorical_crossentropy")
    synthetic = (
        np.random.rand(preset.batch_size, preset.input_size, preset.input_size, 1).astype(
            np.float32
        ),
        np.eye(len(data.classes), dtype=np.float32)[
            np.random.randint(0, len(data.classes), preset.batch_size)
        ],
    )
    model.train_on_batch(*synthetic)
    started = time.perf_counter()
    for _ in range(args.batches):
        model.train_on_batch(*synthetic)
    synthetic_step = (time.perf_counter() - started) / args.batches
    started = time.perf_counter()
    for index in range(args.batches):
        x, y = memory[index % len(memory)][:2]
        model.train_on_batch(x, y)
    real_step = (time.perf_counter() - started) / args.batches
    results["step_ms_synthetic"] = round(synthetic_step * 1000, 1)
    results["step_ms_real_data"] = round(real_step * 1000, 1)
    results["images_per_s_real_data"] = round(preset.batch_size / real_step, 1)
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
