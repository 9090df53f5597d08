"""The CLI's garbage-collector setting for a run: in force inside, undone after."""

from __future__ import annotations

import gc

import pytest

from asyncfetch.runtime.gc_tuning import RUN_THRESHOLD, fewer_collections


def test_the_run_freezes_start_up_objects_and_raises_the_threshold() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (RUN_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_setting_is_undone_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_during_a_run() -> None:
    # Garbage in a cycle (here holding a 1 MB body) is freed by collections in the run.
    live = 0

    class Node:
        def __init__(self) -> None:
            nonlocal live
            live += 1
            self.body = bytearray(1 << 20)
            self.me = self

        def __del__(self) -> None:
            nonlocal live
            live -= 1

    gc.collect()
    created = 100
    kept: list[list[int]] = []  # live containers, as a run's queued requests are
    with fewer_collections():
        for _ in range(created):
            Node()
            kept += ([] for _ in range(RUN_THRESHOLD // 10))
        assert live < created // 2
    gc.collect()
    assert live == 0
