"""Data pipelines: dynamic items, per-clip random draws and loader options.

:func:`audio_pipeline` is the SpeechBrain dynamic item that turns a
manifest's ``wav`` into the ``sig`` a phase trains on; :class:`ClipDraws`
makes every random draw of a pipeline a function of its clip and epoch;
:func:`loader_options` sets the DataLoader workers for the device. Audio
itself is read by :mod:`speechbrain_kd.audio`, manifests by
:mod:`speechbrain_kd.manifests`.
"""

import os
import zlib

import numpy as np
import torch
from speechbrain.utils.data_pipeline import provides, takes

from speechbrain_kd.audio import load_audio, load_crop


class ClipDraws:
    """The random draws of a data pipeline, a function of its clip and epoch.

    Every draw a training pipeline makes for a clip (its crop's start, its
    partner clip) comes from a generator seeded with (seed, epoch, clip ID,
    purpose) alone, not from the state of the process that loads it. So a
    clip gets the same crop whichever loader worker or process loads it and
    at whatever position of the epoch: a run resumed in mid-epoch with
    loader workers, a run with another ``num_workers`` and the processes of
    a ``torchrun`` launch all draw what a single process draws. The Brain
    tells it the epoch (:meth:`set_epoch`) before the epoch's loader
    starts; the workers get a copy then.

    Arguments
    ---------
    seed : int
        The run's seed.

    Example
    -------
    >>> draws = ClipDraws(seed=1)
    >>> draws.set_epoch(3)
    >>> a = torch.randint(100, (), generator=draws.generator("c1", "crop"))
    >>> b = torch.randint(100, (), generator=draws.generator("c1", "crop"))
    >>> bool(a == b)
    True
    >>> draws.set_epoch(4)
    >>> c = torch.randint(10**9, (4,), generator=draws.generator("c1", "crop"))
    >>> draws.set_epoch(3)
    >>> d = torch.randint(10**9, (4,), generator=draws.generator("c1", "crop"))
    >>> bool((c == d).all())
    False
    """

    def __init__(self, seed):
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        """Draw the clips' values of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def generator(self, clip_id, purpose):
        """A new generator for one draw of ``clip_id`` in the current epoch.

        Arguments
        ---------
        clip_id : str
            The clip's ID.
        purpose : str
            What is drawn (``"crop"``, ``"partner"``): each its own stream.

        Returns
        -------
        torch.Generator
        """
        key = [
            self.seed,
            self.epoch,
            zlib.crc32(str(clip_id).encode("utf-8")),
            zlib.crc32(purpose.encode("utf-8")),
        ]
        state = np.random.SeedSequence(key).generate_state(2, np.uint32)
        seed = (int(state[0]) << 31) | (int(state[1]) >> 1)  # 62 bits
        return torch.Generator().manual_seed(seed)


def audio_pipeline(
    sample_rate, channels, crop_seconds=None, random_crop=True, draws=None
):
    """A SpeechBrain dynamic item: ``wav`` path -> ``sig`` ``[time, ch]``.

    Loads, resamples and adapts channels (:func:`load_audio`). With
    ``crop_seconds`` a crop of that length is taken (:func:`load_crop`,
    which reads only the crop's frames when no resampling is needed): at a
    random start for training, or from the middle of the clip with
    ``random_crop=False``. The start is drawn from ``draws`` (the item then
    takes ``id`` too: the same crop in any worker or process) or, without
    it, from torch's generator (seeded by SpeechBrain). Without
    ``crop_seconds`` the full clip is returned (evaluation).

    Arguments
    ---------
    sample_rate : int
        Rate of ``sig``.
    channels : int
        Channels of ``sig``.
    crop_seconds : float, optional
        Crop length; None for the full clip.
    random_crop : bool
        Random (True) or centred (False) crops.
    draws : ClipDraws, optional
        Where random starts come from, per clip and epoch.

    Returns
    -------
    function
        Decorated with ``takes("wav")`` (``takes("wav", "id")`` with
        ``draws``) and ``provides("sig")``.

    Example
    -------
    >>> import soundfile
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> path = getfixture("tmpdir") + "/clip.wav"
    >>> soundfile.write(path, torch.zeros(16000, 2).numpy(), 16000)
    >>> data = DynamicItemDataset({"c1": {"wav": path}})
    >>> data.add_dynamic_item(audio_pipeline(8000, 2, crop_seconds=0.5))
    >>> data.set_output_keys(["sig"])
    >>> data[0]["sig"].shape
    torch.Size([4000, 2])
    >>> keyed = DynamicItemDataset({"c1": {"wav": path}})
    >>> keyed.add_dynamic_item(audio_pipeline(8000, 2, 0.5, draws=ClipDraws(1)))
    >>> keyed.set_output_keys(["sig"])
    >>> keyed[0]["sig"].shape
    torch.Size([4000, 2])
    """
    n_samples = None
    if crop_seconds is not None:
        n_samples = int(round(crop_seconds * sample_rate))
        if n_samples < 1:
            raise ValueError(
                f"crop_seconds={crop_seconds} gives no sample at "
                f"{sample_rate} Hz"
            )

    def read(wav, generator=None):
        if n_samples is None:
            return load_audio(wav, sample_rate, channels)
        start = None if random_crop else "centre"
        return load_crop(
            wav, sample_rate, channels, n_samples, start, generator
        )

    if draws is None:
        return takes("wav")(provides("sig")(read))

    @takes("wav", "id")
    @provides("sig")
    def keyed(wav, clip_id):
        return read(wav, draws.generator(clip_id, "crop"))

    return keyed


def available_cores():
    """CPU cores this process may run on (its affinity, not the machine's).

    Example
    -------
    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def loader_options(options, device="cpu", processes=1, cores=None):
    """DataLoader options that keep the device fed, from a phase's options.

    ``num_workers: auto`` (the recipes' default) becomes 0 when training
    runs on the CPU, where the training step already uses every core and
    loading in the main process costs a small share of it, and, on a GPU,
    one worker per core this process may use (its share of the cores when
    ``processes`` run on the node) but one, at most 16: the GPU consumes
    clips faster than a few workers read them. On a GPU, ``pin_memory``
    defaults to True, so that batches reach the device by DMA. Any option
    given explicitly is kept as it is.

    Arguments
    ---------
    options : dict
        Loader options (``train_dataloader_opts`` of a phase), not changed.
    device : str or torch.device
        Where the model runs.
    processes : int
        Training processes on this node (DDP), which share the cores.
    cores : int, optional
        Cores available (default: :func:`available_cores`).

    Returns
    -------
    dict
        A new dict.

    Example
    -------
    >>> loader_options({"num_workers": "auto", "batch_size": 8}, "cpu")
    {'num_workers': 0, 'batch_size': 8}
    >>> opts = loader_options({"num_workers": "auto"}, "cuda:0", cores=16)
    >>> opts["num_workers"], opts["pin_memory"]
    (15, True)
    >>> loader_options({"num_workers": "auto"}, "cuda:0", 2, cores=16)[
    ...     "num_workers"]
    7
    >>> loader_options({"num_workers": 3, "pin_memory": False}, "cuda:0")
    {'num_workers': 3, 'pin_memory': False}
    >>> loader_options({"num_workers": "many"}, "cpu")
    Traceback (most recent call last):
    ...
    ValueError: num_workers must be a count (0 or more) or auto, got 'many'
    """
    options = dict(options)
    on_gpu = torch.device(device).type == "cuda"
    workers = options.get("num_workers", 0)
    if workers == "auto":
        share = (cores or available_cores()) // max(int(processes), 1)
        workers = min(max(share - 1, 0), 16) if on_gpu else 0
    if (
        isinstance(workers, bool)
        or not isinstance(workers, int)
        or (workers < 0)
    ):
        raise ValueError(
            f"num_workers must be a count (0 or more) or auto, got {workers!r}"
        )
    options["num_workers"] = workers
    if on_gpu:
        options.setdefault("pin_memory", True)
    return options
