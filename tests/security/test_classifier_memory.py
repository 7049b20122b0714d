"""The classifier's memo stays bounded whatever the traffic (issue #24, point 7).

A hostile client can send a fresh 50 KB TLS SNI with every handshake: each one
memoised kept 1,500 of them in 165 MB. Values longer than any domain are worked
out anew instead, so memory is bounded by the cache's entry count and length.
"""

from __future__ import annotations

import gc
import tracemalloc

from vtguardian.iocs import Classifier, IocType


def _held_after(classify, count: int, length: int) -> int:
    """Bytes still allocated after classifying ``count`` distinct values and dropping
    every reference the caller had to them."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(count):
        value = f"{n:08d}" + "a" * length + ".example.com"
        classify(value)
        del value
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held


def test_long_hostile_values_are_not_kept():
    classifier = Classifier()
    held = _held_after(lambda v: classifier.classify_as(v, IocType.DOMAIN), 300, 50_000)
    held_free = _held_after(classifier.classify, 300, 50_000)
    # 300 values of 50 KB are 15 MB: none of it may stay.
    assert held < 1_000_000 and held_free < 1_000_000, (held, held_free)


def test_short_values_stay_cached_up_to_the_bound():
    classifier = Classifier(cache_size=1000)
    held = _held_after(classifier.classify, 5000, 200)
    # At most 1,000 entries of ~220-byte values and their results: well under 2 MB.
    assert held < 2_000_000, held
    first = classifier.classify("www.example.com")
    assert classifier.classify("www.example.com") is first  # still memoised
