"""``trainer.detector_threads``: detection spread over threads, each with its own detector."""

from __future__ import annotations

import threading
import time

import pytest

from trainer.detector_threads import ITEMS_PER_WORKER, map_with_detectors


class Recorder:
    """Stands in for a detector: the helper only hands it to the work, which notes who uses it."""

    def __init__(self, made: list[Recorder]):
        made.append(self)
        self.threads: set[int] = set()


def test_results_come_in_order_each_thread_with_its_own_detector():
    made: list[Recorder] = []

    def work(detector: Recorder, item: int) -> int:
        detector.threads.add(threading.get_ident())
        time.sleep(0.001 * (item % 3))  # later items often finish first
        return item * item

    items = range(5 * 3 * ITEMS_PER_WORKER + 7)  # several windows and a ragged last one
    results = list(map_with_detectors(work, items, lambda: Recorder(made), workers=3))
    assert results == [(item, item * item) for item in items]
    assert 1 <= len(made) <= 3
    assert all(len(detector.threads) == 1 for detector in made)  # never shared by threads
    assert len({thread for detector in made for thread in detector.threads}) == len(made)


def test_items_are_read_a_window_ahead_not_whole():
    pulled = 0

    def items():
        nonlocal pulled
        for item in range(1000):
            pulled += 1
            yield item

    results = map_with_detectors(lambda _, item: item, items(), object, workers=2)
    assert next(results) == (0, 0)
    assert pulled == 2 * ITEMS_PER_WORKER  # one window, not the 1,000 decoded images
    assert sum(1 for _ in results) == 999


def test_at_least_one_worker():
    with pytest.raises(ValueError, match="at least one worker"):
        list(map_with_detectors(lambda _, item: item, [1], object, workers=0))
