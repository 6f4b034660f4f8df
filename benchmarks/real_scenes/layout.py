"""The set on disk: TAU clip names, the clips cut and written, the lists.

Written through :mod:`speechbrain_kd.tau_layout`, the writer the demo set
uses too, into a temporary folder that replaces ``OUT`` at the end.
"""

import json
import os
import re
import shutil

from speechbrain_kd.tau_layout import write_clip, write_tau_lists

from .audio import read, resample, to_stereo

INFO_FILE = "real_scenes_info.json"


def tau_filename(scene, identifier, segment):
    """The TAU 2019 name of a clip: ``audio/scene-identifier-segment-a.wav``.

    Example
    -------
    >>> tau_filename("rain", "0ad_weather_rain", 3)
    'audio/rain-0ad_weather_rain-3-a.wav'
    """
    for part in (scene, identifier):
        if not re.fullmatch(r"[a-z0-9_]+", part):
            raise ValueError(f"{part!r} is not made of [a-z0-9_]")
    return f"audio/{scene}-{identifier}-{int(segment)}-a.wav"


def write_set(folder, clips, files, rate):
    """Cut the clips out of their files and write the TAU layout.

    Each file is read once, resampled to ``rate`` and mixed to two
    channels (as its windows were chosen); the lists hold the clips in
    the order of their names.

    Arguments
    ---------
    folder : pathlib.Path
    clips : list of dict
        ``filename``, ``scene``, ``identifier``, ``split``, ``key`` (of the
        file), ``start`` and ``stop`` (samples at ``rate``).
    files : dict
        Key -> path of the source file.
    rate : int

    Returns
    -------
    dict
        What :func:`speechbrain_kd.tau_layout.write_tau_lists` returns.

    Example
    -------
    >>> from pathlib import Path
    >>> import numpy as np, soundfile
    >>> folder = Path(getfixture("tmpdir"))
    >>> soundfile.write(folder / "src.wav", np.zeros(1600), 16000)
    >>> clips = [
    ...     {"filename": tau_filename("rain", "p_a", s), "scene": "rain",
    ...      "identifier": "p_a", "split": "train", "key": "k",
    ...      "start": 400 * s, "stop": 400 * (s + 1)}
    ...     for s in (1, 0)
    ... ]
    >>> write_set(folder / "set", clips, {"k": folder / "src.wav"}, 8000)
    {'train': 2, 'evaluate': 0}
    >>> print((folder / "set/evaluation_setup/fold1_train.csv").read_text())
    filename	scene_label
    audio/rain-p_a-0-a.wav	rain
    audio/rain-p_a-1-a.wav	rain
    <BLANKLINE>
    >>> soundfile.info(str(folder / "set/audio/rain-p_a-1-a.wav")).frames
    400
    """
    by_key = {}
    for clip in clips:
        by_key.setdefault(clip["key"], []).append(clip)
    for key in sorted(by_key):
        audio, file_rate = read(files[key])
        audio = to_stereo(resample(audio, file_rate, rate))
        for clip in by_key[key]:
            write_clip(
                folder / clip["filename"],
                audio[clip["start"] : clip["stop"]],
                rate,
            )
    return write_tau_lists(folder, sorted(clips, key=lambda c: c["filename"]))


def _read_info(out):
    try:
        return json.loads((out / INFO_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _replace(tmp, out):
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)
