"""Audio loading and data pipelines shared by every phase and recipe."""

import csv

import soundfile
import torch
import torchaudio
from speechbrain.utils.data_pipeline import provides, takes


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
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(
            f"sample_rate must be a positive integer, got {sample_rate}"
        )
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise RuntimeError(f"cannot read audio file {path}: {error}") from error
    wav = torch.from_numpy(data)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(
            wav.T, orig_freq=rate, new_freq=int(sample_rate)
        ).T
    try:
        return adapt_channels(wav, channels)
    except ValueError as error:
        raise ValueError(
            f"{path}: {error} (set n_channels to a count this recording "
            "can give: 1, or at most its own channel count)"
        ) from error


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
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"a crop needs at least 1 sample, got {n_samples}")
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
    high = length - n_samples + 1
    if start is None:
        start = int(torch.randint(high, (), generator=generator))
    elif not 0 <= start < high:
        raise ValueError(
            f"start={start} is outside [0, {high - 1}] for a {n_samples}-"
            f"sample crop of a {length}-sample clip"
        )
    return wav[start : start + n_samples]


def audio_pipeline(sample_rate, channels, crop_seconds=None, random_crop=True):
    """A SpeechBrain dynamic item: ``wav`` path -> ``sig`` ``[time, ch]``.

    Loads, resamples and adapts channels (:func:`load_audio`). With
    ``crop_seconds`` a crop of that length is taken (:func:`crop`): at a
    random start drawn from torch's generator (seeded by SpeechBrain) for
    training, or from the middle of the clip with ``random_crop=False``.
    Without ``crop_seconds`` the full clip is returned (evaluation).

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

    Returns
    -------
    function
        Decorated with ``takes("wav")`` and ``provides("sig")``.

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
    """
    n_samples = None
    if crop_seconds is not None:
        n_samples = int(round(crop_seconds * sample_rate))
        if n_samples < 1:
            raise ValueError(
                f"crop_seconds={crop_seconds} gives no sample at "
                f"{sample_rate} Hz"
            )

    @takes("wav")
    @provides("sig")
    def pipeline(wav):
        sig = load_audio(wav, sample_rate, channels)
        if n_samples is None:
            return sig
        start = None
        if not random_crop:
            start = max(sig.shape[0] - n_samples, 0) // 2
        return crop(sig, n_samples, start=start)

    return pipeline


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
