"""Audio of the source files: reading, two channels, one rate, levels.

Every file is mixed to two channels (mono duplicated, more than two: the
first two; :func:`speechbrain_kd.audio.adapt_channels`), resampled with
scipy's polyphase filter and cut into non-overlapping windows from its
start; windows quieter than -75 dBFS RMS, or 30 dB below the loudest
window of their file (the gaps between thunder claps, fade-outs), are
skipped.
"""

from math import gcd

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

from speechbrain_kd.audio import adapt_channels

MIN_RMS_DBFS = -75.0
MAX_DROP_DB = 30.0


def read(file):
    """Samples ``(time, channels)`` as float64, and the rate, of a file.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.wav"
    >>> soundfile.write(path, np.zeros(80), 8000)
    >>> audio, rate = read(path)
    >>> audio.shape, audio.dtype, rate
    ((80, 1), dtype('float64'), 8000)
    """
    audio, rate = soundfile.read(str(file), dtype="float64", always_2d=True)
    return audio, rate


def to_stereo(audio):
    """Two channels: mono duplicated, more than two cut to the first two.

    Example
    -------
    >>> to_stereo(np.array([0.1, 0.2])).tolist()
    [[0.1, 0.1], [0.2, 0.2]]
    >>> to_stereo(np.zeros((4, 6))).shape
    (4, 2)
    """
    audio = torch.from_numpy(np.asarray(audio, dtype=np.float64))
    return adapt_channels(audio, 2).numpy()


def resample(audio, rate, new_rate):
    """Resample along the first axis with scipy's polyphase filter.

    The filter the duplicate threshold was calibrated with and the clips
    of the published set were cut with: torchaudio's sinc resampler would
    change the samples of every resampled clip.

    Example
    -------
    >>> resample(np.ones((44100, 2)), 44100, 16000).shape
    (16000, 2)
    """
    audio = np.asarray(audio, dtype=np.float64)
    if rate == new_rate:
        return audio
    step = gcd(int(rate), int(new_rate))
    return resample_poly(audio, new_rate // step, rate // step, axis=0)


def rms_dbfs(audio):
    """RMS level of an array in dB relative to full scale (1.0).

    Example
    -------
    >>> round(rms_dbfs(np.full(100, 0.1)), 6)
    -20.0
    """
    power = float(np.mean(np.square(audio))) if np.size(audio) else 0.0
    return float(10.0 * np.log10(max(power, 1e-20)))


def clip_windows(
    audio,
    rate,
    seconds,
    min_rms_dbfs=MIN_RMS_DBFS,
    max_drop_db=MAX_DROP_DB,
):
    """Non-overlapping clip windows from the start that are not near-silent.

    A window is skipped when its RMS is below ``min_rms_dbfs`` or more than
    ``max_drop_db`` below the loudest window of the array.

    Arguments
    ---------
    audio : numpy.ndarray
        Samples, ``(time,)`` or ``(time, channels)``.
    rate : int
    seconds : float
        Clip length; windows are ``round(seconds * rate)`` samples.
    min_rms_dbfs, max_drop_db : float

    Returns
    -------
    list of (start, stop, rms_db)
        Sample indices of the windows kept, with their level.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = 0.1 * rng.standard_normal(1050)
    >>> x[300:400] = 0.0  # the second window is silent
    >>> [(a, b) for a, b, _ in clip_windows(x, 100, 1.0)]
    [(0, 100), (100, 200), (200, 300), (400, 500), (500, 600), (600, 700), \
(700, 800), (800, 900), (900, 1000)]
    """
    length = int(round(seconds * rate))
    if length <= 0:
        raise ValueError(f"a clip of {seconds} s at {rate} Hz is empty")
    count = len(audio) // length
    levels = [
        rms_dbfs(audio[k * length : (k + 1) * length]) for k in range(count)
    ]
    if not levels:
        return []
    floor = max(min_rms_dbfs, max(levels) - max_drop_db)
    return [
        (k * length, (k + 1) * length, level)
        for k, level in enumerate(levels)
        if level >= floor
    ]
