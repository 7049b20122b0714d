"""The ingest holds the cyclic collector off per batch: it must come back on after
a read, an error included, and a cycle made during one batch must not outlive
the next."""

from __future__ import annotations

import gc
import weakref

import pytest

from vtguardian.ingest.gc_pause import without_gc_pauses


class _Node:
    pass


def _cycle() -> weakref.ref:
    node = _Node()
    node.me = node  # only the cyclic collector can free this
    return weakref.ref(node)


def test_collector_is_off_inside_and_back_on_after():
    assert gc.isenabled()
    seen = [gc.isenabled() for _ in without_gc_pauses(range(3))]
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_collector_comes_back_after_an_error():
    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError):
        for _ in without_gc_pauses(failing()):
            pass
    assert gc.isenabled()


def test_a_cycle_made_in_one_batch_is_gone_by_the_next():
    refs = []
    for _ in without_gc_pauses(range(3)):
        if refs:
            assert refs[-1]() is None
        refs.append(_cycle())
