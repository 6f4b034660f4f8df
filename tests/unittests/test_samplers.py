"""Pair-focused batches: proportions, re-drawing, sharding, errors."""

import pytest

from speechbrain_kd.samplers import PairFocusedBatchSampler

LABELS = ["airport", "mall", "bus", "park", "tram"] * 12  # 24 target clips


def sampler(**kw):
    options = {
        "labels": LABELS,
        "target_labels": ["airport", "mall"],
        "batch_size": 8,
        "seed": 3,
    }
    options.update(kw)
    return PairFocusedBatchSampler(**options)


def test_every_batch_is_half_target():
    s = sampler()
    batches = list(s)
    assert len(batches) == len(s) == 6
    for batch in batches:
        in_pair = sum(LABELS[i] in ("airport", "mall") for i in batch)
        assert in_pair == 4 and len(batch) == 8


def test_every_target_clip_once_per_epoch():
    targets = [i for i, lab in enumerate(LABELS) if lab in ("airport", "mall")]
    used = [i for b in sampler() for i in b if LABELS[i] in ("airport", "mall")]
    assert sorted(used) == targets


def test_non_target_pool_is_redrawn_each_epoch_and_reproducible():
    def others(epoch, seed=3):
        s = sampler(seed=seed)
        s.set_epoch(epoch)
        return sorted(
            i for b in s for i in b if LABELS[i] not in ("airport", "mall")
        )

    assert others(1) != others(2)
    assert others(1) == others(1)
    assert others(1) != others(1, seed=4)
    assert len(set(others(1))) == 24  # drawn without replacement


def test_shards_are_disjoint_equal_and_cover_the_epoch():
    whole = [tuple(b) for b in sampler()]
    shards = [
        [tuple(b) for b in sampler(num_replicas=3, rank=r)] for r in range(3)
    ]
    assert [len(s) for s in shards] == [2, 2, 2]
    assert len(sampler(num_replicas=3, rank=0)) == 2
    flat = [b for s in shards for b in s]
    assert len(set(flat)) == 6 and set(flat) == set(whole)


def test_few_non_target_clips_are_drawn_with_replacement():
    labels = ["a"] * 6 + ["b"] * 6 + ["c"] * 2
    s = PairFocusedBatchSampler(labels, ["a", "b"], 4, seed=0)
    for batch in s:
        assert sum(labels[i] == "c" for i in batch) == 2


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"batch_size": 7}, "must be even"),
        ({"batch_size": 0}, "must be even"),
        ({"target_labels": ["airport", "beach"]}, "missing \\['beach'\\]"),
        ({"rank": 2, "num_replicas": 2}, "rank 2"),
    ],
)
def test_bad_settings_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        sampler(**kw)
