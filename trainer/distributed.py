"""Training on every accelerator of a machine, or of several, through JAX's own runtime.

* Multi-host: :func:`initialize` calls ``jax.distributed.initialize`` when a coordinator is
  configured (``--coordinator``/``--num-processes``/``--process-id``, or the
  ``YUZUG_COORDINATOR``/``YUZUG_NUM_PROCESSES``/``YUZUG_PROCESS_ID`` environment variables).
  It must run before anything touches a JAX device.
* Data parallelism: ``keras.distribution.DataParallel`` over all devices, local and remote.

Batch size and learning rate (the documented rule):

* default, ``--batch-scaling fixed``: the preset's batch is the *global* batch, split evenly
  over the devices. Every step sees the same examples as on one device, so results do not
  depend on the device count beyond floating-point noise. Use it to reproduce a recipe.
* ``--batch-scaling linear``: the preset's batch is the *per-device* batch, so the global batch
  and the learning rate both grow with the device count (Goyal et al., 2017: linear scaling with
  the preset's warm-up). Use it for throughput on many devices.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topology:
    process_id: int
    process_count: int
    local_devices: int
    global_devices: int
    platform: str


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> Topology:
    """Joins a multi-host job when one is configured; returns what JAX sees."""
    import jax

    coordinator = coordinator or os.environ.get("YUZUG_COORDINATOR")
    if coordinator:
        count = num_processes or int(os.environ.get("YUZUG_NUM_PROCESSES", "1"))
        index = (
            process_id if process_id is not None else int(os.environ.get("YUZUG_PROCESS_ID", "0"))
        )
        logger.info("joining %s as process %d of %d", coordinator, index, count)
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=count, process_id=index
        )
    return Topology(
        process_id=jax.process_index(),
        process_count=jax.process_count(),
        local_devices=jax.local_device_count(),
        global_devices=jax.device_count(),
        platform=jax.devices()[0].platform,
    )


def enable_data_parallel(topology: Topology) -> bool:
    """Shards every batch over all devices when there is more than one."""
    if topology.global_devices <= 1:
        return False
    import jax
    import keras

    # Our sources already give each process its own slice (TrainBatches offsets, ShardBatches
    # per-host shards), so Keras must not try to shard them again.
    distribution = keras.distribution.DataParallel(
        devices=jax.devices(), auto_shard_dataset=topology.process_count == 1
    )
    keras.distribution.set_distribution(distribution)
    logger.info(
        "data parallel over %d %s devices in %d process(es)",
        topology.global_devices,
        topology.platform,
        topology.process_count,
    )
    return True


def scaled_batch_and_lr(
    batch_size: int, learning_rate: float, devices: int, scaling: str
) -> tuple[int, float]:
    """The global batch and learning rate for ``devices`` under the rule in the module doc."""
    if scaling == "linear":
        return batch_size * devices, learning_rate * devices
    if scaling != "fixed":
        raise ValueError(f"--batch-scaling must be 'fixed' or 'linear', not {scaling!r}")
    if batch_size % devices:
        raise ValueError(
            f"batch {batch_size} does not split evenly over {devices} devices; "
            "pick a multiple or use --batch-scaling linear"
        )
    return batch_size, learning_rate
