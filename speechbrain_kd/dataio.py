"""Audio loading and data pipelines shared by every phase and recipe."""

import csv
import io
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from speechbrain.utils.data_pipeline import provides, takes

from speechbrain_kd.files import replacing, write_text_atomic

logger = logging.getLogger(__name__)


def adapt_channels(wav, channels):
    """Return ``wav`` with exactly ``channels`` channels.

    Models and data pipelines call this so that any recording can be fed to
    any model: a mono signal is repeated on every channel, a model with one
    channel gets the average of all channels, and a recording with more
    channels than the model takes keeps its first ``channels`` ones (the
    binaural pair of a multi-microphone recording).

    Arguments
    ---------
    wav : torch.Tensor
        ``[time]``, ``[time, ch]`` or ``[batch, time, ch]``. A 2-D input is
        read as ``[time, ch]``: unsqueeze a mono batch ``[batch, time]`` to
        ``[batch, time, 1]`` first.
    channels : int
        The number of channels wanted.

    Returns
    -------
    torch.Tensor
        ``[..., time, channels]`` (a channel axis is always present).

    Example
    -------
    >>> adapt_channels(torch.zeros(100), 2).shape
    torch.Size([100, 2])
    >>> adapt_channels(torch.ones(4, 100, 2), 1).shape
    torch.Size([4, 100, 1])
    >>> adapt_channels(torch.zeros(100, 4), 2).shape
    torch.Size([100, 2])
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    if wav.dim() == 1:
        wav = wav.unsqueeze(-1)
    have = wav.shape[-1]
    if have == channels:
        return wav
    if have == 1:
        return wav.expand(*wav.shape[:-1], channels).contiguous()
    if channels == 1:
        return wav.mean(dim=-1, keepdim=True)
    if have > channels:
        return wav[..., :channels].contiguous()
    raise ValueError(
        f"cannot turn a {have}-channel signal into {channels} channels"
    )


def load_audio(path, sample_rate, channels):
    """Read an audio file as ``[time, channels]`` at ``sample_rate``.

    Arguments
    ---------
    path : str or pathlib.Path
    sample_rate : int
        Resampled to this rate when the file has another.
    channels : int
        Adapted to this many channels (:func:`adapt_channels`).

    Returns
    -------
    torch.Tensor
        float32 ``[time, channels]``.

    Example
    -------
    >>> import soundfile
    >>> path = getfixture("tmpdir") + "/tone.wav"
    >>> soundfile.write(path, torch.zeros(3200).numpy(), 32000)
    >>> load_audio(path, 16000, 2).shape
    torch.Size([1600, 2])
    >>> stereo = getfixture("tmpdir") + "/stereo.wav"
    >>> soundfile.write(stereo, torch.zeros(100, 2).numpy(), 16000)
    >>> load_audio(stereo, 16000, 3)
    Traceback (most recent call last):
    ...
    ValueError: ...stereo.wav: cannot turn a 2-channel signal into 3 channels...
    """
    _check_sample_rate(sample_rate)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise RuntimeError(f"cannot read audio file {path}: {error}") from error
    wav = torch.from_numpy(data)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(
            wav.T, orig_freq=rate, new_freq=int(sample_rate)
        ).T
    return _adapt_file_channels(wav, channels, path)


def _check_sample_rate(sample_rate):
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(
            f"sample_rate must be a positive integer, got {sample_rate}"
        )


def _adapt_file_channels(wav, channels, path):
    try:
        return adapt_channels(wav, channels)
    except ValueError as error:
        raise ValueError(
            f"{path}: {error} (set n_channels to a count this recording "
            "can give: 1, or at most its own channel count)"
        ) from error


def load_crop(
    path, sample_rate, channels, n_samples, start=None, generator=None
):
    """Read ``n_samples`` of an audio file as ``[n_samples, channels]``.

    The same as ``crop(load_audio(path, sample_rate, channels), n_samples,
    start, generator)``, bit for bit and with the same random draw, but
    when the file is already at ``sample_rate`` only the crop's frames are
    read from disk (a training crop is a fraction of the clip: 2 s of 3 in
    the demo, 5 s of 10 on TAU). A file at another rate is read whole and
    resampled first, since a resampled crop depends on the samples around
    it; a clip shorter than the crop is read whole and looped (:func:`crop`).

    Arguments
    ---------
    path : str or pathlib.Path
    sample_rate : int
        The rate of the crop (the file is resampled when it has another).
    channels : int
        Adapted to this many channels (:func:`adapt_channels`).
    n_samples : int
        Length of the crop, at least 1.
    start : int or str, optional
        First sample (at ``sample_rate``); ``None`` draws it uniformly from
        every valid start, the last one included (:func:`crop_start`, from
        ``generator`` or torch's global generator); ``"centre"`` takes the
        middle of the clip.
    generator : torch.Generator, optional
        For the random start.

    Returns
    -------
    torch.Tensor
        float32 ``[n_samples, channels]``.

    Example
    -------
    >>> import soundfile
    >>> path = getfixture("tmpdir") + "/ramp.wav"
    >>> soundfile.write(path, torch.arange(8.).numpy() / 8, 8, "FLOAT")
    >>> load_crop(path, 8, 1, 3, start=5)[:, 0] * 8
    tensor([5., 6., 7.])
    >>> load_crop(path, 8, 2, 4, start="centre")[:, 1] * 8
    tensor([2., 3., 4., 5.])
    >>> g = torch.Generator().manual_seed(0)
    >>> load_crop(path, 16, 1, 5, generator=g).shape  # resampled first
    torch.Size([5, 1])
    """
    _check_sample_rate(sample_rate)
    n_samples = _crop_length(n_samples)
    try:
        sound = soundfile.SoundFile(str(path))
    except Exception as error:
        raise RuntimeError(f"cannot read audio file {path}: {error}") from error
    with sound:
        length = sound.frames
        # Resampling or looping needs the whole clip.
        partial = (
            sound.samplerate == sample_rate
            and length >= n_samples
            and sound.seekable()
        )
        if partial:
            first = (
                (length - n_samples) // 2
                if start == "centre"
                else crop_start(length, n_samples, start, generator)
            )
            data = _read_frames(sound, first, n_samples, path)
    if partial:
        return _adapt_file_channels(torch.from_numpy(data), channels, path)
    wav = load_audio(path, sample_rate, channels)
    if start == "centre":
        start = max(wav.shape[0] - n_samples, 0) // 2
    return crop(wav, n_samples, start=start, generator=generator)


def _read_frames(sound, first, n_samples, path):
    """Frames ``first .. first + n_samples - 1`` of an open file, float32."""
    try:
        sound.seek(first)
        data = sound.read(n_samples, dtype="float32", always_2d=True)
    except Exception as error:
        raise RuntimeError(f"cannot read audio file {path}: {error}") from error
    if len(data) != n_samples:
        raise RuntimeError(
            f"cannot read audio file {path}: its header says "
            f"{sound.frames} frames but it ends at frame {first + len(data)}"
        )
    return data


def _crop_length(n_samples):
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"a crop needs at least 1 sample, got {n_samples}")
    return n_samples


def crop_start(length, n_samples, start=None, generator=None):
    """The first sample of an ``n_samples`` crop of a ``length``-sample clip.

    A random start is uniform over ``0 .. length - n_samples`` (the last
    valid start included), drawn with one ``torch.randint`` call from
    ``generator`` or, without one, from torch's global generator (the one
    SpeechBrain seeds); a given start is checked.

    Arguments
    ---------
    length : int
        Samples in the clip, at least ``n_samples``.
    n_samples : int
        Samples in the crop.
    start : int, optional
        A start to check; None draws one.
    generator : torch.Generator, optional

    Returns
    -------
    int

    Example
    -------
    >>> crop_start(10, 4, start=6)
    6
    >>> g = torch.Generator().manual_seed(0)
    >>> 0 <= crop_start(10, 4, generator=g) <= 6
    True
    >>> crop_start(10, 4, start=7)
    Traceback (most recent call last):
    ...
    ValueError: start=7 is outside [0, 6] for a 4-sample crop of a 10-...
    """
    high = length - n_samples + 1
    if start is None:
        return int(torch.randint(high, (), generator=generator))
    if not 0 <= start < high:
        raise ValueError(
            f"start={start} is outside [0, {high - 1}] for a {n_samples}-"
            f"sample crop of a {length}-sample clip"
        )
    return int(start)


def crop(wav, n_samples, start=None, generator=None):
    """Cut ``n_samples`` from ``wav`` (``[time, ...]``) at ``start``.

    A random start is drawn when ``start`` is None, from ``generator`` or,
    without one, from torch's global generator (the one SpeechBrain seeds),
    so crops are reproducible under ``seed_everything``. A clip shorter than
    the crop is repeated (looped) rather than zero-padded, so a crop always
    holds signal and no silence teaches the model a shortcut.

    Arguments
    ---------
    wav : torch.Tensor
        ``[time]`` or ``[time, ...]``.
    n_samples : int
        Length of the crop, at least 1.
    start : int, optional
        First sample; ``0 <= start <= len(wav) - n_samples``.
    generator : torch.Generator, optional
        For the random start.

    Returns
    -------
    torch.Tensor
        ``[n_samples, ...]``.

    Example
    -------
    >>> crop(torch.arange(10), 4, start=3)
    tensor([3, 4, 5, 6])
    >>> crop(torch.arange(3), 7)
    tensor([0, 1, 2, 0, 1, 2, 0])
    >>> g = torch.Generator().manual_seed(0)
    >>> crop(torch.arange(100), 5, generator=g).shape
    torch.Size([5])
    """
    n_samples = _crop_length(n_samples)
    length = wav.shape[0]
    if length == 0:
        raise ValueError("cannot crop an empty waveform")
    if length < n_samples:
        if start not in (None, 0):
            raise ValueError(
                f"start={start} for a {n_samples}-sample crop of a "
                f"{length}-sample clip: a short clip is looped from 0"
            )
        repeats = -(-n_samples // length)
        return torch.cat([wav] * repeats)[:n_samples]
    start = crop_start(length, n_samples, start, generator)
    return wav[start : start + n_samples]


def fitting_crop(crop_seconds, durations):
    """The training crop, shortened to the shortest clip when needed.

    A crop longer than a clip would be padded with silence, which no test
    clip has; it is cut to the shortest clip with a warning instead.

    Arguments
    ---------
    crop_seconds : float or None
        None: no crop (whole clips).
    durations : iterable of float
        The training clips' lengths in seconds.

    Returns
    -------
    float or None

    Example
    -------
    >>> fitting_crop(2.0, [3.0, 5.0]), fitting_crop(None, [1.0])
    (2.0, None)
    >>> fitting_crop(4.0, [3.0, 5.0])  # and a warning naming both
    3.0
    """
    if crop_seconds is None:
        return None
    shortest = min(float(d) for d in durations)
    if crop_seconds > shortest:
        logger.warning(
            "crop_seconds=%s is longer than the shortest training clip "
            "(%.2f s): cropping to %.2f s",
            crop_seconds,
            shortest,
            shortest,
        )
        return shortest
    return crop_seconds


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


def batch_of_channels(wavs, channels, model_name="the model"):
    """Shape a batch of waveforms as ``[batch, time, channels]``.

    ``[batch, time]`` is read as mono; any channel count is adapted with
    :func:`adapt_channels`. Models call this first, so that every family
    takes the same inputs.

    Arguments
    ---------
    wavs : torch.Tensor
        ``[batch, time]`` or ``[batch, time, ch]``.
    channels : int
        The channels the model takes.
    model_name : str
        Named in the error.

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> batch_of_channels(torch.zeros(3, 100), 2).shape
    torch.Size([3, 100, 2])
    >>> batch_of_channels(torch.zeros(100), 2)
    Traceback (most recent call last):
    ...
    ValueError: the model expects [batch, time] or [batch, time, channels] ...
    """
    if wavs.dim() == 2:
        wavs = wavs.unsqueeze(-1)
    if wavs.dim() != 3:
        raise ValueError(
            f"{model_name} expects [batch, time] or [batch, time, channels] "
            f"waveforms, got {tuple(wavs.shape)}"
        )
    return adapt_channels(wavs, channels)


def read_manifest(manifest_csv):
    """``{ID: wav path}`` of a SpeechBrain CSV manifest.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/m.csv"
    >>> _ = open(path, "w").write("ID,wav\\nc1,/a.wav\\n")
    >>> read_manifest(path)
    {'c1': '/a.wav'}
    """
    with open(manifest_csv, newline="", encoding="utf-8") as f:
        return {row["ID"]: row["wav"] for row in csv.DictReader(f)}


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


def manifest_at_rate(manifest_csv, sample_rate, folder):
    """The manifest with every clip at ``sample_rate``, resampled once.

    A phase whose rate differs from the recordings' (the demo preset's
    16 kHz on 48 kHz TAU files) would otherwise read each whole file and
    resample it at every step. Each clip whose ``sample_rate`` column
    differs is resampled once (:func:`load_audio`, so bit for bit what the
    phase would compute) into ``folder/<ID>.wav`` (32-bit float, the same
    channels as the source), and a copy of the manifest pointing at them is
    written to ``folder/<manifest name>``. A copy is remade when its
    source's path, size or modification time changed (kept in
    ``folder/sources.json``); files and manifest are written whole or not
    at all. When every clip is already at the rate, the manifest itself is
    returned and nothing is written.

    Arguments
    ---------
    manifest_csv : str or pathlib.Path
        A manifest with the columns ``ID``, ``wav`` and ``sample_rate``.
    sample_rate : int
        The phase's rate.
    folder : str or pathlib.Path
        Where the copies go (one folder per rate).

    Returns
    -------
    pathlib.Path
        The manifest to read.

    Example
    -------
    >>> import soundfile
    >>> tmp = str(getfixture("tmpdir"))
    >>> soundfile.write(tmp + "/c.wav", torch.ones(800).numpy() / 2, 8000)
    >>> _ = open(tmp + "/m.csv", "w").write(
    ...     "ID,wav,sample_rate\\nc," + tmp + "/c.wav,8000\\n")
    >>> manifest_at_rate(tmp + "/m.csv", 8000, tmp + "/r") == Path(
    ...     tmp + "/m.csv")
    True
    >>> copy = manifest_at_rate(tmp + "/m.csv", 4000, tmp + "/r4000")
    >>> row = next(csv.DictReader(open(copy)))
    >>> row["sample_rate"], soundfile.info(row["wav"]).samplerate
    ('4000', 4000)
    """
    manifest_csv, folder = Path(manifest_csv), Path(folder)
    _check_sample_rate(sample_rate)
    with open(manifest_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    missing = [c for c in ("ID", "wav", "sample_rate") if c not in fields]
    if missing:
        raise ValueError(f"{manifest_csv} lacks the column(s) {missing}")
    to_resample = [
        row for row in rows if int(row["sample_rate"]) != sample_rate
    ]
    if not to_resample:
        return manifest_csv
    folder.mkdir(parents=True, exist_ok=True)
    sources_json = folder / "sources.json"
    try:
        sources = json.loads(sources_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sources = {}
    out = folder / manifest_csv.name
    changed = not out.is_file()
    for row in to_resample:
        source, copy = row["wav"], folder / f"{row['ID']}.wav"
        stamp = _file_stamp(source, manifest_csv, row["ID"])
        if sources.get(row["ID"]) != stamp or not copy.is_file():
            changed = True
            wav = load_audio(source, sample_rate, _file_channels(source))
            with replacing(copy) as tmp:
                soundfile.write(
                    tmp, wav.numpy(), sample_rate, "FLOAT", format="WAV"
                )
            sources[row["ID"]] = stamp
        row["wav"], row["sample_rate"] = str(copy), str(sample_rate)
    text = _csv_text(fields, rows)
    if not changed:  # the manifest's other columns may have changed
        with open(out, newline="", encoding="utf-8") as f:
            changed = f.read() != text
    if changed:
        write_text_atomic(sources_json, json.dumps(sources, indent=1))
        write_text_atomic(out, text)
    return out


def _csv_text(fields, rows):
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _file_stamp(path, manifest_csv, clip_id):
    try:
        stat = os.stat(path)
    except OSError as error:
        raise FileNotFoundError(
            f"{manifest_csv}: audio file {path} of clip {clip_id} cannot be "
            f"read: {error}"
        ) from error
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _file_channels(path):
    try:
        return soundfile.info(str(path)).channels
    except Exception as error:
        raise RuntimeError(f"cannot read audio file {path}: {error}") from error
