"""Samplers for specialists: half target pair, half everything else.

Jung et al., "Knowledge Distillation in Acoustic Scene Classification",
IEEE Access 2020, train each specialist on batches made half of clips of its
two target scenes and half of clips of the other scenes, the non-target clips
re-drawn every epoch to match the number of target clips.
"""

import torch
from torch.utils.data import Sampler


class PairFocusedBatchSampler(Sampler):
    """Batches of dataset indices, half from the target pair.

    Every epoch uses each target clip once (shuffled) and a fresh random
    draw of as many non-target clips (with replacement only when there are
    fewer non-target than target clips). The draw depends on ``seed`` and
    the epoch (:meth:`set_epoch`) alone, so every process of a multi-process
    run computes the same batches.

    Under SpeechBrain's DDP, ``Brain`` wraps a ``batch_sampler`` in a
    ``DistributedSamplerWrapper`` that gives each process its share of the
    batches: keep the default ``num_replicas=1`` there. Outside ``Brain``,
    pass ``num_replicas`` and ``rank`` to shard the batches yourself
    (disjoint, equally many per process).

    In YAML (the recipe calls it with the training set and the pair)::

        pair_sampler: !name:speechbrain_kd.samplers.\
            PairFocusedBatchSampler.from_dataset
            label_key: scene
            batch_size: 24
            seed: 1234

    and pass it as ``train_loader_kwargs={"batch_sampler": sampler}``.

    Arguments
    ---------
    labels : sequence of str
        The label of every dataset item, in dataset order.
    target_labels : sequence of two str
    batch_size : int
        Even, at least 2.
    seed : int
    drop_last : bool
        Drop a last batch smaller than ``batch_size``.
    num_replicas, rank : int
        Sharding of the batches (see above).

    Example
    -------
    >>> labels = ["a", "b", "c", "d"] * 4
    >>> sampler = PairFocusedBatchSampler(labels, ["a", "b"], 4, seed=0)
    >>> batches = list(sampler)
    >>> len(batches), [sum(labels[i] in "ab" for i in b) for b in batches]
    (4, [2, 2, 2, 2])
    """

    def __init__(
        self,
        labels,
        target_labels,
        batch_size,
        seed=0,
        drop_last=False,
        num_replicas=1,
        rank=0,
    ):
        if batch_size < 2 or batch_size % 2:
            raise ValueError(
                f"batch_size={batch_size}: a pair-focused batch is half "
                "target, half non-target, so it must be even and >= 2"
            )
        target_labels = list(target_labels)
        missing = [t for t in target_labels if t not in set(labels)]
        if len(target_labels) != 2 or missing:
            raise ValueError(
                f"target pair {target_labels}: needs two scenes present in "
                f"the training data; missing {missing}"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.targets = [
            i for i, lab in enumerate(labels) if lab in target_labels
        ]
        self.others = [
            i for i, lab in enumerate(labels) if lab not in target_labels
        ]
        if not self.others:
            raise ValueError("no clip outside the target pair to sample")
        self.target_labels = target_labels
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    @classmethod
    def from_dataset(cls, dataset, label_key, target_labels, batch_size, **kw):
        """Build from a SpeechBrain ``DynamicItemDataset``.

        Only ``label_key`` is read, so no audio is loaded.

        Example
        -------
        >>> from speechbrain.dataio.dataset import DynamicItemDataset
        >>> data = DynamicItemDataset(
        ...     {f"c{i}": {"scene": "abc"[i % 3]} for i in range(6)})
        >>> len(PairFocusedBatchSampler.from_dataset(data, "scene", "ab", 2))
        4
        """
        with dataset.output_keys_as([label_key]):
            labels = [item[label_key] for item in dataset]
        return cls(labels, target_labels, batch_size, **kw)

    def set_epoch(self, epoch):
        """Choose the epoch whose draw of non-target clips to use."""
        self.epoch = epoch

    def _all_batches(self):
        generator = torch.Generator().manual_seed(
            self.seed * 100003 + self.epoch
        )
        targets = torch.tensor(self.targets)[
            torch.randperm(len(self.targets), generator=generator)
        ]
        others = torch.tensor(self.others)
        if len(others) >= len(targets):
            pick = torch.randperm(len(others), generator=generator)
            others = others[pick[: len(targets)]]
        else:
            pick = torch.randint(
                len(others), (len(targets),), generator=generator
            )
            others = others[pick]
        half = self.batch_size // 2
        batches = []
        for start in range(0, len(targets), half):
            batch = torch.cat(
                [targets[start : start + half], others[start : start + half]]
            )
            if self.drop_last and len(batch) < self.batch_size:
                continue
            order = torch.randperm(len(batch), generator=generator)
            batches.append(batch[order].tolist())
        return batches

    def __iter__(self):
        batches = self._all_batches()
        per_replica = len(batches) // self.num_replicas
        if self.num_replicas > 1:
            batches = batches[: per_replica * self.num_replicas]
        return iter(batches[self.rank :: self.num_replicas])

    def __len__(self):
        half = self.batch_size // 2
        n = len(self.targets) // half
        if not self.drop_last and len(self.targets) % half:
            n += 1
        return n // self.num_replicas if self.num_replicas > 1 else n
