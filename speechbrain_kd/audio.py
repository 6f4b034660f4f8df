"""Audio clips: reading, resampling, channel adaptation and crops.

Every phase, recipe, teacher and model reads and shapes audio through
these functions, so that any recording can be fed to any model: a file is
read at the model's rate (:func:`load_audio`), its channels adapted to the
model's count (:func:`adapt_channels`, :func:`batch_of_channels`) and, for
training, cropped (:func:`load_crop` reads only the crop's frames when no
resampling is needed; :func:`crop`, :func:`crop_start`,
:func:`fitting_crop`).
"""

import logging

import soundfile
import torch
import torchaudio

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
