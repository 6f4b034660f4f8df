"""Samplers for specialists: half target pair, half everything else.

Jung, Heo, Shim, Yu, "Knowledge Distillation in Acoustic Scene
Classification", IEEE Access 8:166870-166879, 2020 (and the authors' DCASE
2019 specialist system) train each specialist on batches made half of clips
of its two target scenes and half of clips of the other scenes, the
non-target clips re-drawn every epoch to match the number of target clips.

Using it with SpeechBrain
-------------------------
The sampler needs the training set's labels, so the YAML declares a factory
and the script calls it with the dataset (``train.py`` of the DCASE 2019
recipe does this)::

    pair_sampler:
        !name:speechbrain_kd.samplers.PairFocusedBatchSampler.from_dataset
        label_key: scene
        batch_size: !ref <batch_size>
        seed: !ref <seed>

    # train.py
    sampler = hparams["pair_sampler"](train_set, target_labels=pair)
    opts = dict(hparams["train_dataloader_opts"])
    for key in ("batch_size", "shuffle", "sampler", "drop_last"):
        opts.pop(key, None)  # DataLoader refuses them with a batch_sampler
    opts["batch_sampler"] = sampler
    brain.fit(..., train_loader_kwargs=opts)

The sampler shards itself under DDP (``shards_itself = True``) and its
draw changes with :meth:`PairFocusedBatchSampler.set_epoch`. SpeechBrain
1.1.2's ``Brain._train_loader_specifics`` would (a) under DDP wrap any
``batch_sampler`` in a ``DistributedSamplerWrapper``, sharding it a second
time, and (b) without DDP never call ``set_epoch`` on a ``batch_sampler``.
The Brain must therefore hand such a sampler through untouched and register
it as ``self.train_sampler`` (so that ``fit`` calls ``set_epoch(epoch)``
every epoch), e.g.::

    def _train_loader_specifics(self, dataset, loader_kwargs):
        sampler = loader_kwargs.get("batch_sampler")
        if getattr(sampler, "shards_itself", False):
            self.train_sampler = sampler
            return loader_kwargs
        return super()._train_loader_specifics(dataset, loader_kwargs)
"""

import math

import numpy as np
import torch
from torch.utils.data import Sampler


def _plain(label):
    """A label as a hashable Python value (one-element tensors -> scalar)."""
    if isinstance(label, (torch.Tensor, np.ndarray, np.generic)):
        flat = label.reshape(-1)
        if len(flat) != 1:
            raise ValueError(f"a label must be a single value, got {label!r}")
        return flat[0].item()
    return label


def _distributed_defaults(num_replicas, rank):
    initialised = (
        torch.distributed.is_available() and torch.distributed.is_initialized()
    )
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    if int(num_replicas) != num_replicas or num_replicas < 1:
        raise ValueError(f"num_replicas must be an int >= 1: {num_replicas}")
    if int(rank) != rank or not 0 <= rank < num_replicas:
        raise ValueError(
            f"rank {rank} is outside 0..{num_replicas - 1} "
            f"(num_replicas={num_replicas})"
        )
    return int(num_replicas), int(rank)


class PairFocusedBatchSampler(Sampler):
    """Batches of dataset indices, half target pair, half other scenes.

    Every epoch uses each target clip exactly once (shuffled) and a fresh
    random draw of as many non-target clips, without replacement. When the
    other scenes have fewer clips than the targets, their pool is repeated
    in whole shuffled passes (so repeat counts differ by at most one
    between clips) if ``allow_repeats``, else construction fails.

    Each batch holds ``k`` target and ``k`` non-target clips, in shuffled
    order, with ``k <= batch_size / 2``. The epoch's target clips are dealt
    over ``n`` batches as evenly as possible (``k`` differs by at most one
    between batches), where ``n = ceil(targets / (batch_size / 2))``, raised
    to a multiple of ``num_replicas``. With ``drop_last``, ``n`` is instead
    ``floor(targets / (batch_size / 2))`` lowered to a multiple of
    ``num_replicas``, every batch is full, and the target clips left over
    (a different random set each epoch) are skipped.

    The draw depends only on ``seed`` and the epoch (:meth:`set_epoch`;
    a ``torch.Generator``, never the global RNG), so every process of a
    multi-process run computes the same ``n`` batches; process ``rank``
    yields batches ``rank, rank + num_replicas, ...``: disjoint shards of
    ``n / num_replicas`` batches each. If ``set_epoch`` is never called,
    every new iteration advances the epoch by one, so the pool is still
    re-drawn by a loop that does not know about ``set_epoch``.

    See the module docstring for the YAML declaration and for how a
    SpeechBrain ``Brain`` must use it (it must not be wrapped in
    ``DistributedSamplerWrapper``: it already shards itself).

    Arguments
    ---------
    labels : sequence
        The label of every dataset item, in dataset order (scene names or
        encoded indices).
    target_labels : sequence
        The target scenes (usually two), in the same form as ``labels``.
    batch_size : int
        Even and >= 2: half of every batch is target clips.
    seed : int
        Non-negative; with the epoch, fixes the draw.
    drop_last : bool
        Only full batches (see above).
    num_replicas : int, optional
        Number of processes; default: the world size of an initialised
        ``torch.distributed`` group, else 1.
    rank : int, optional
        This process; default: the ``torch.distributed`` rank, else 0.
    allow_repeats : bool
        Repeat non-target clips when there are fewer of them than target
        clips (default); ``False`` makes that an error.

    Example
    -------
    >>> labels = ["a", "b", "c", "d"] * 4
    >>> sampler = PairFocusedBatchSampler(labels, ["a", "b"], 4, seed=0)
    >>> batches = list(sampler)
    >>> len(batches), [sum(labels[i] in "ab" for i in b) for b in batches]
    (4, [2, 2, 2, 2])
    """

    #: Tells a training loop not to wrap it in another distributed sampler.
    shards_itself = True

    def __init__(
        self,
        labels,
        target_labels,
        batch_size,
        seed=0,
        drop_last=False,
        num_replicas=None,
        rank=None,
        allow_repeats=True,
    ):
        super().__init__()
        if isinstance(batch_size, bool) or int(batch_size) != batch_size:
            raise ValueError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 2 or batch_size % 2:
            raise ValueError(
                f"batch_size={batch_size}: a pair-focused batch is half "
                "target clips, half non-target clips, so batch_size must "
                "be even and >= 2"
            )
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if isinstance(target_labels, str):
            raise ValueError(
                f"target_labels={target_labels!r}: give a list of labels, "
                "e.g. ['metro', 'tram'], not one string"
            )
        labels = [_plain(label) for label in labels]
        target_labels = [_plain(label) for label in target_labels]
        if not labels:
            raise ValueError("labels is empty: the dataset has no item")
        if not target_labels or len(set(target_labels)) != len(target_labels):
            raise ValueError(
                f"target_labels={target_labels}: needs distinct labels "
                "(the specialist's target pair)"
            )
        known = sorted(set(labels), key=str)
        unknown = [t for t in target_labels if t not in set(labels)]
        if unknown:
            raise ValueError(
                f"target label(s) {unknown} have no clip in the dataset; "
                f"its labels are {known}"
            )
        self.num_replicas, self.rank = _distributed_defaults(num_replicas, rank)
        targets = set(target_labels)
        self.target_indices = [
            i for i, lab in enumerate(labels) if lab in targets
        ]
        self.other_indices = [
            i for i, lab in enumerate(labels) if lab not in targets
        ]
        self.target_labels = target_labels
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.allow_repeats = bool(allow_repeats)
        self.epoch = None
        self._next_auto_epoch = 0
        self.n_batches, self.n_targets_used = self._plan()
        if not self.other_indices:
            raise ValueError(
                f"every clip belongs to the target labels {target_labels}: "
                "no non-target clip to fill the other half of the batches"
            )
        if (
            len(self.other_indices) < self.n_targets_used
            and not self.allow_repeats
        ):
            raise ValueError(
                f"{len(self.other_indices)} non-target clips cannot match "
                f"the {self.n_targets_used} target clips of an epoch without "
                "repeats: set allow_repeats=True or use a larger dataset"
            )

    def _plan(self):
        """Batches per epoch (all ranks) and target clips used per epoch."""
        half = self.batch_size // 2
        n_targets = len(self.target_indices)
        world = self.num_replicas
        if self.drop_last:
            n_batches = (n_targets // half) // world * world
            if n_batches == 0:
                raise ValueError(
                    f"{n_targets} target clips do not fill {world} full "
                    f"batch(es) of {half} target clips (batch_size="
                    f"{self.batch_size}, drop_last=True, num_replicas="
                    f"{world}): lower batch_size or set drop_last=False"
                )
            return n_batches, n_batches * half
        n_batches = math.ceil(math.ceil(n_targets / half) / world) * world
        if n_batches > n_targets:
            raise ValueError(
                f"{n_targets} target clip(s) cannot give every one of "
                f"{world} processes a batch: need at least {world}"
            )
        return n_batches, n_targets

    @classmethod
    def from_dataset(
        cls, dataset, label_key, target_labels, batch_size, **kwargs
    ):
        """Build from a SpeechBrain ``DynamicItemDataset``.

        Only ``label_key`` is computed for each item (through
        ``dataset.output_keys_as``), so no audio is loaded. The indices
        refer to ``dataset`` as given, filtered and sorted or not.

        Arguments
        ---------
        dataset : speechbrain.dataio.dataset.DynamicItemDataset
            The training set the DataLoader reads.
        label_key : str
            The item key holding the scene (``"scene"``).
        target_labels : sequence
            The target scenes.
        batch_size : int
            Even, >= 2.
        **kwargs
            Passed on (``seed``, ``drop_last``, ``num_replicas``, ...).

        Returns
        -------
        PairFocusedBatchSampler

        Example
        -------
        >>> from speechbrain.dataio.dataset import DynamicItemDataset
        >>> data = DynamicItemDataset(
        ...     {f"c{i}": {"scene": "abc"[i % 3]} for i in range(6)})
        >>> s = PairFocusedBatchSampler.from_dataset(data, "scene", "ab", 2)
        Traceback (most recent call last):
        ...
        ValueError: target_labels='ab': give a list of labels, ...
        >>> s = PairFocusedBatchSampler.from_dataset(
        ...     data, "scene", ["a", "b"], 2)
        >>> len(s)
        4
        """
        if not hasattr(dataset, "output_keys_as"):
            raise TypeError(
                "from_dataset needs a SpeechBrain DynamicItemDataset, got "
                f"{type(dataset).__name__}; pass labels to the constructor"
            )
        try:
            with dataset.output_keys_as([label_key]):
                labels = [dataset[i][label_key] for i in range(len(dataset))]
        except KeyError as error:
            raise KeyError(
                f"label_key={label_key!r} is not a key of the dataset's "
                f"items ({error})"
            ) from error
        return cls(labels, target_labels, batch_size, **kwargs)

    def set_epoch(self, epoch):
        """Choose the epoch whose draw to use (SpeechBrain calls it).

        Arguments
        ---------
        epoch : int
            Non-negative.

        Example
        -------
        >>> s = PairFocusedBatchSampler(["a", "b", "c"] * 4, ["a", "b"], 4)
        >>> s.set_epoch(1); one = list(s); s.set_epoch(1)
        >>> list(s) == one
        True
        """
        if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def _generator(self, epoch):
        # SeedSequence mixes seed and epoch, so (seed, epoch + 1) and
        # (seed + 1, epoch) give unrelated draws.
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(
            2, np.uint32
        )
        seed = (int(state[0]) << 31) ^ int(state[1])
        return torch.Generator().manual_seed(seed)

    def _draw_others(self, n, generator):
        others = torch.tensor(self.other_indices)
        passes = [
            others[torch.randperm(len(others), generator=generator)]
            for _ in range(math.ceil(n / len(others)))
        ]
        return torch.cat(passes)[:n]

    def epoch_batches(self, epoch):
        """All ``n`` batches of an epoch, before sharding.

        Arguments
        ---------
        epoch : int

        Returns
        -------
        list of list of int

        Example
        -------
        >>> s = PairFocusedBatchSampler(["a", "b", "c"] * 4, ["a", "b"], 4)
        >>> [len(b) for b in s.epoch_batches(0)]
        [4, 4, 4, 4]
        """
        generator = self._generator(epoch)
        targets = torch.tensor(self.target_indices)
        targets = targets[torch.randperm(len(targets), generator=generator)]
        targets = targets[: self.n_targets_used]
        others = self._draw_others(self.n_targets_used, generator)
        batches = []
        for t, o in zip(
            torch.tensor_split(targets, self.n_batches),
            torch.tensor_split(others, self.n_batches),
            strict=True,
        ):
            batch = torch.cat([t, o])
            # Mixed order: nothing downstream (mixup partners, say) may
            # rely on targets coming first.
            order = torch.randperm(len(batch), generator=generator)
            batches.append(batch[order].tolist())
        return batches

    def __iter__(self):
        if self.epoch is None:
            epoch = self._next_auto_epoch
            self._next_auto_epoch += 1
        else:
            epoch = self.epoch
        batches = self.epoch_batches(epoch)
        return iter(batches[self.rank :: self.num_replicas])

    def __len__(self):
        return self.n_batches // self.num_replicas
