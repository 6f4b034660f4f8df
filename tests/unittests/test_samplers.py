"""Pair-focused batches: proportions, re-drawing, sharding, datasets, errors."""

from collections import Counter

import pytest
import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_kd.samplers import PairFocusedBatchSampler

PAIR = ("airport", "mall")
# 30 target clips (15 + 15) among 75.
LABELS = ["airport", "bus", "mall", "park", "tram"] * 15
TARGETS = [i for i, lab in enumerate(LABELS) if lab in PAIR]


def sampler(**kw):
    options = {
        "labels": LABELS,
        "target_labels": list(PAIR),
        "batch_size": 8,
        "seed": 3,
        "num_replicas": 1,
        "rank": 0,
    }
    options.update(kw)
    return PairFocusedBatchSampler(**options)


def split(batch, labels=LABELS):
    target = [i for i in batch if labels[i] in PAIR]
    return target, [i for i in batch if labels[i] not in PAIR]


@pytest.mark.parametrize("batch_size", [2, 6, 8, 30, 64])
def test_every_batch_is_half_target(batch_size):
    s = sampler(batch_size=batch_size)
    batches = list(s)
    assert len(batches) == len(s)
    for batch in batches:
        target, other = split(batch)
        assert len(target) == len(other) >= 1
        assert len(batch) <= batch_size
    if 30 % (batch_size // 2) == 0:  # sizes allow full batches
        assert all(len(b) == batch_size for b in batches)
    # Target clips are dealt evenly: batch sizes differ by at most 2.
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= 2


def test_every_target_clip_once_per_epoch():
    s = sampler(batch_size=8)  # 30 targets: 4 per batch does not divide
    for epoch in range(3):
        s.set_epoch(epoch)
        used = [i for b in s for i in split(b)[0]]
        assert sorted(used) == TARGETS


def test_target_order_is_shuffled_and_batches_are_mixed():
    s = sampler()
    s.set_epoch(1)
    batches = list(s)
    flat_targets = [i for b in batches for i in split(b)[0]]
    assert flat_targets != TARGETS
    # Targets are not always first inside a batch.
    assert any(LABELS[b[0]] not in PAIR for b in batches)


def test_non_target_pool_is_redrawn_each_epoch_and_reproducible():
    def others(epoch, seed=3):
        s = sampler(seed=seed)
        s.set_epoch(epoch)
        return [i for b in s for i in split(b)[1]]

    assert sorted(others(1)) != sorted(others(2))
    assert others(1) == others(1)
    assert sorted(others(1)) != sorted(others(1, seed=4))
    drawn = others(5)
    assert len(drawn) == len(set(drawn)) == len(TARGETS)  # no replacement
    assert all(LABELS[i] not in PAIR for i in drawn)


def test_same_epoch_same_batches_and_no_global_rng():
    s = sampler()
    s.set_epoch(7)
    first = list(s)
    torch.manual_seed(0)
    torch.rand(100)  # the global RNG must not matter
    assert list(s) == first
    assert sampler().epoch_batches(7) == first


def test_without_set_epoch_each_iteration_redraws():
    s = sampler()
    first, second, third = list(s), list(s), list(s)
    assert first != second != third
    assert first == sampler().epoch_batches(0)
    assert second == sampler().epoch_batches(1)
    assert third == sampler().epoch_batches(2)  # counts on, not 0, 1, 1


@pytest.mark.parametrize(
    "batch_size,world,drop_last", [(8, 3, False), (8, 4, False), (8, 4, True)]
)
def test_shards_are_disjoint_equal_and_cover_the_epoch(
    batch_size, world, drop_last
):
    def make(rank):
        s = sampler(
            batch_size=batch_size,
            num_replicas=world,
            rank=rank,
            drop_last=drop_last,
        )
        s.set_epoch(2)
        return s

    whole = make(0).epoch_batches(2)
    shards = [[tuple(b) for b in make(r)] for r in range(world)]
    counts = {len(shard) for shard in shards}
    assert counts == {len(make(0))} and len(whole) == world * len(make(0))
    flat = [b for shard in shards for b in shard]
    assert sorted(flat) == sorted(tuple(b) for b in whole)
    assert len(set(flat)) == len(flat)
    used = [i for b in flat for i in split(b)[0]]
    assert len(used) == len(set(used))  # no target clip in two shards
    if drop_last:
        assert all(len(b) == batch_size for b in flat)
    else:
        assert sorted(used) == TARGETS


def test_defaults_follow_torch_distributed(monkeypatch):
    assert (sampler(num_replicas=None, rank=None).num_replicas) == 1
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)
    s = sampler(num_replicas=None, rank=None)
    assert (s.num_replicas, s.rank) == (3, 2)
    assert list(s) == s.epoch_batches(0)[2::3]


def test_few_non_target_clips_are_repeated_evenly():
    labels = ["a"] * 6 + ["b"] * 7 + ["c"] * 3 + ["d"] * 2
    s = PairFocusedBatchSampler(labels, ["a", "b"], 4, seed=0, num_replicas=1)
    batches = list(s)
    for batch in batches:
        n_target = sum(labels[i] in "ab" for i in batch)
        assert n_target == len(batch) - n_target
    repeats = Counter(i for b in batches for i in b if labels[i] in "cd")
    assert sum(repeats.values()) == 13 and set(repeats) == set(range(13, 18))
    assert max(repeats.values()) - min(repeats.values()) <= 1
    with pytest.raises(ValueError, match="5 non-target clips cannot match"):
        PairFocusedBatchSampler(labels, ["a", "b"], 4, allow_repeats=False)


def test_from_dataset_reads_labels_without_audio_and_keeps_order():
    data = {
        f"clip{i}": {"scene": LABELS[i], "duration": (i * 7) % 11}
        for i in range(len(LABELS))
    }
    dataset = DynamicItemDataset(data)

    def load_audio(scene):
        raise AssertionError("audio must not be loaded")

    dataset.add_dynamic_item(load_audio, takes="scene", provides="sig")
    dataset = dataset.filtered_sorted(sort_key="duration")
    dataset.set_output_keys(["id", "scene", "sig"])
    s = PairFocusedBatchSampler.from_dataset(
        dataset, "scene", list(PAIR), batch_size=8, seed=1, num_replicas=1
    )
    dataset.set_output_keys(["id", "scene"])
    loader = make_dataloader(dataset, batch_sampler=s)
    seen = []
    for batch in loader:
        n_target = sum(scene in PAIR for scene in batch.scene)
        assert 2 * n_target == len(batch.scene)
        seen += [
            i
            for i, scene in zip(batch.id, batch.scene, strict=True)
            if scene in PAIR
        ]
    expected = [k for k, v in data.items() if v["scene"] in PAIR]
    assert sorted(seen) == sorted(expected)
    # Its options reach the sampler: the batches of the constructor's.
    labels = [dataset.data[i]["scene"] for i in dataset.data_ids]
    same = PairFocusedBatchSampler(
        labels, list(PAIR), batch_size=8, seed=1, num_replicas=1
    )
    assert s.epoch_batches(0) == same.epoch_batches(0)
    assert s.seed == 1


def test_from_dataset_with_encoded_labels():
    names = ["airport", "bus", "mall", "park", "tram"]
    dataset = DynamicItemDataset(
        {f"c{i}": {"scene": lab} for i, lab in enumerate(LABELS)}
    )
    dataset.add_dynamic_item(
        lambda scene: torch.LongTensor([names.index(scene)]),
        takes="scene",
        provides="scene_encoded",
    )
    s = PairFocusedBatchSampler.from_dataset(
        dataset, "scene_encoded", [0, 2], 8, num_replicas=1
    )
    assert sorted(i for b in s for i in split(b)[0]) == TARGETS
    with pytest.raises(KeyError, match="label_key='label'"):
        PairFocusedBatchSampler.from_dataset(dataset, "label", [0, 2], 8)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"batch_size": 7}, "must be even and >= 2"),
        ({"batch_size": 0}, "must be even and >= 2"),
        ({"target_labels": ["airport", "beach"]}, "\\['beach'\\] have no"),
        ({"target_labels": "airport,mall"}, "give a list of labels"),
        ({"target_labels": ["mall", "mall"]}, "needs distinct labels"),
        ({"target_labels": []}, "needs distinct labels"),
        ({"labels": []}, "labels is empty"),
        ({"labels": ["airport", "mall"] * 3}, "no non-target clip"),
        ({"rank": 2, "num_replicas": 2}, "rank 2 is outside 0..1"),
        ({"num_replicas": 0}, "num_replicas must be"),
        ({"num_replicas": 31, "rank": 0}, "30 target clip\\(s\\) cannot"),
        ({"drop_last": True, "batch_size": 64}, "do not fill 1 full"),
        ({"seed": -1}, "seed must be"),
        ({"seed": 1.5}, "seed must be"),
        ({"seed": True}, "seed must be"),
        ({"batch_size": 8.5}, "batch_size must be an int"),
        ({"batch_size": True}, "batch_size must be an int"),
    ],
)
def test_bad_settings_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        sampler(**kw)


@pytest.mark.parametrize("epoch", [-1, 1.5, True])
def test_bad_epoch_is_named(epoch):
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        sampler().set_epoch(epoch)


def test_messages_are_whole():
    labels = ["a", "b", "c", "c"]
    cases = [
        (
            (labels, "ab", 2),
            "target_labels='ab': give a list of labels, e.g. ['metro', "
            "'tram'], not one string",
        ),
        (([], ["a", "b"], 2), "labels is empty: the dataset has no item"),
        (
            (labels, ["a", "a"], 2),
            "target_labels=['a', 'a']: needs distinct labels (the "
            "specialist's target pair)",
        ),
        (
            (labels, ["a", "z"], 2),
            "target label(s) ['z'] have no clip in the dataset; its labels "
            "are ['a', 'b', 'c']",
        ),
        (
            (["a", "b"], ["a", "b"], 2),
            "every clip belongs to the target labels ['a', 'b']: no "
            "non-target clip to fill the other half of the batches",
        ),
        (
            ([torch.tensor([1, 2]), 3], [3], 2),
            "a label must be a single value, got tensor([1, 2])",
        ),
    ]
    for args, text in cases:
        with pytest.raises(ValueError) as error:
            PairFocusedBatchSampler(*args)
        assert str(error.value) == text
    with pytest.raises(ValueError) as error:
        PairFocusedBatchSampler(
            ["a", "b", "c"], ["a", "b"], 2, allow_repeats=False
        )
    assert str(error.value) == (
        "1 non-target clips cannot match the 2 target clips of an epoch "
        "without repeats: set allow_repeats=True or use a larger dataset"
    )
    with pytest.raises(TypeError) as error:
        PairFocusedBatchSampler.from_dataset([1, 2], "scene", ["a"], 2)
    assert str(error.value) == (
        "from_dataset needs a SpeechBrain DynamicItemDataset, got list; "
        "pass labels to the constructor"
    )


def test_labels_of_mixed_types_are_listed_and_defaults_hold():
    # Integer and text labels together: listed, not a TypeError from sort.
    with pytest.raises(ValueError, match=r"its labels are \[1, 'a'\]"):
        PairFocusedBatchSampler([1, "a", "a"], [2], 2)
    sampler = PairFocusedBatchSampler(["a", "b", "c", "c"], ["a", "b"], 2)
    assert sampler.target_labels == ["a", "b"]
    explicit = PairFocusedBatchSampler(
        ["a", "b", "c", "c"], ["a", "b"], 2, seed=0
    )
    sampler.set_epoch(3)
    explicit.set_epoch(3)
    assert list(sampler) == list(explicit)  # the default seed is 0
    # As many non-target clips as target clips: enough without repeats.
    exact = PairFocusedBatchSampler(
        ["a", "b", "c", "d"], ["a", "b"], 2, allow_repeats=False
    )
    for batch in exact:
        assert len(batch) == 2
