"""Face detection over many images on several threads, in order.

Preparing a data set runs BlazeFace over every photo (``--detect-faces``) or every re-cut
camera frame (``--camera-framing``): up to tens of thousands of frames at about 120 a second on
one core. A LiteRT interpreter serves one thread at a time and releases the GIL while it
invokes, so each worker thread gets a detector of its own and the work scales with the cores.
Results come back in the order of the items, so what a thread count changes is the time only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

from edge.detect.base import FaceDetector

Item = TypeVar("Item")
Result = TypeVar("Result")

# Items in flight for each worker: enough to keep the threads busy between windows, few enough
# that a window of decoded photos stays small in memory.
ITEMS_PER_WORKER = 16


def map_with_detectors(
    work: Callable[[FaceDetector, Item], Result],
    items: Iterable[Item],
    new_detector: Callable[[], FaceDetector],
    workers: int = 1,
) -> Iterator[tuple[Item, Result]]:
    """Yields ``(item, work(detector, item))`` for each of ``items`` in their order, the work
    spread over ``workers`` threads that each call ``new_detector`` once, when first needed.
    ``items`` is read a window at a time, so a generator of decoded images is not held whole.
    """
    if workers < 1:
        raise ValueError(f"detection needs at least one worker thread, got {workers}")
    own = threading.local()

    def run(item: Item) -> Result:
        detector = getattr(own, "detector", None)
        if detector is None:
            detector = own.detector = new_detector()
        return work(detector, item)

    pending = iter(items)
    with ThreadPoolExecutor(workers, "detect") as pool:
        while window := list(islice(pending, workers * ITEMS_PER_WORKER)):
            yield from zip(window, pool.map(run, window), strict=True)
