#!/usr/bin/env python3
"""A small acoustic-scene set cut from real field recordings in Debian.

The synthetic demo set (``speechbrain_kd.demo_data``) checks the code; this
script builds a set of *real* recordings that is small enough for a CPU and
still says something about a model: rain, wind, thunder, birds, insects,
running water, surf and crowds, recorded by people and released under open
licences inside the data packages of four free games in Debian 12
"bookworm":

- ``0ad-data`` 0.0.26-1 (0 A.D., Wildfire Games, CC-BY-SA-3.0): the
  ambiences ``audio/ambient/`` inside ``mods/public/public.zip``;
- ``redeclipse-data`` 1.6.0-1 (Red Eclipse): ``data/sounds/ambience/``
  (CC-BY-SA-3.0 and CC-BY-3.0, several Freesound recordists);
- ``ufoai-sound`` 2.5-2 (UFO: Alien Invasion): ``sound/ambience/`` inside
  ``base/0snd.pk3`` (CC-BY-SA-3.0, GPL-2, GPL-2+);
- ``supertuxkart-data`` 1.4+dfsg-2 (SuperTuxKart): ``data/sfx/`` (CC0,
  CC-BY-3.0).

Usage::

    python benchmarks/real_scenes.py OUT [--cache DIR] [--seconds 3]
        [--sample_rate 16000] [--max_clips_per_source 20]
        [--train_fraction 0.7]

No audio lives in the repository, and CI never runs this script: the
``.deb`` files (about 2.9 GB, pinned by version and SHA-256 in
:data:`PACKAGES`) are fetched at run time with ``apt-get download`` (or,
without apt, from ``deb.debian.org`` and then ``snapshot.debian.org``) into
``--cache`` (default ``OUT.cache``). Only the paths that the rules below
name are taken out of them (0 A.D.'s 3.2 GB zip is spooled to a temporary
file for that, then deleted), so a rerun reads neither the network nor the
large archives again. Python's ``tarfile``, ``lzma`` and ``zipfile`` do the
unpacking; ``dpkg`` is not needed.

Construction
------------
1. *Scenes.* :data:`SCENE_RULES` is the table that maps file-name patterns
   to scenes, first match wins; files that no rule names are not used. The
   Debian copyright file of each package (machine-readable, DEP-5) gives
   the licence and the credit of every file, last matching stanza wins;
   files under a licence outside :data:`ALLOWED_LICENCES` would be left out.
   Files that libsndfile cannot decode, or that are shorter than one clip,
   are left out and listed.
2. *Sources.* Game data often carries near-copies: two mixes of one rain
   recording, loops cut from one take, the same file under two names. Files
   are joined into one *source group* when (a) they are byte-identical, (b)
   their names differ only by a trailing number in one folder of one
   package and the copyright file credits them alike (``rain_11`` and
   ``rain_12``, ``fire03`` and ``fire04``: loops of one take that need not
   overlap, so no audio test can see them; ``exotic-birds`` and
   ``exotic-birds_2`` have two recordists and stay apart), (c)
   :data:`SAME_SOURCE` says so from the copyright notes, or (d) their audio
   matches: :func:`similarity` is the highest normalised cross-correlation,
   over all time shifts (sub-frame ones included), of 5-s probes of one
   file's log-mel fingerprint (24 bands, 20-ms frames, 16 kHz, slow level
   changes and digital silence removed) against the other's. Gain, EQ per
   band, re-encoding, resampling and time shifts leave it near 1 (0.96 to
   1.00 for the copies found here); in the default build the 2573 pairs of
   files from *different* packages, certainly different recordings, score
   at most 0.32 (99th percentile 0.23). Pairs at or above
   :data:`DUPLICATE_THRESHOLD` (0.40, above all of those with a margin) are
   joined, transitively. The script prints the score distribution, and
   ``real_scenes_info.json`` keeps it. A group is one TAU ``identifier``
   (the "recording location"), ``<package>_<name>``.
3. *Clips.* Every file is mixed to two channels (mono duplicated, more than
   two: the first two), resampled (``scipy.signal.resample_poly``) and cut
   into non-overlapping clips of ``--seconds`` from its start. Clips quieter
   than -75 dBFS RMS, or 30 dB below the loudest clip of their file (the
   gaps between thunder claps, fade-outs), are skipped. At most
   ``--max_clips_per_source`` clips are kept per group, evenly spaced over
   its files, so that no long recording dominates a scene. Levels are those
   of the packages (no normalisation); samples are written as 16-bit PCM.
   Scenes with fewer than 3 groups or 20 clips are dropped and listed.
4. *Split.* Whole groups go to ``fold1_train.csv`` or
   ``fold1_evaluate.csv``: for each scene the assignment whose share of
   training clips is nearest ``--train_fraction`` with both sides non-empty
   (all assignments tried, groups ordered by the SHA-256 of their name to
   break ties). So no recording is on both sides and every scene is on
   both.

Layout (exactly the TAU Urban Acoustic Scenes 2019 development set's, so
``recipes/DCASE2019/dcase2019_prepare.py`` reads it unchanged)::

    OUT/audio/<scene>-<identifier>-<segment>-a.wav
    OUT/meta.csv             filename scene_label identifier source_label
    OUT/evaluation_setup/fold1_train.csv     filename scene_label
    OUT/evaluation_setup/fold1_evaluate.csv  filename scene_label
    OUT/evaluation_setup/fold1_test.csv      filename

(tab-separated, with headers), plus ``PROVENANCE.md`` (construction,
licences, duplicate groups, one row per source file), ``provenance.tsv``
(one row per clip: package, version, path inside the package, licence,
credit, start and end in seconds), ``licenses/`` (the packages' copyright
files) and ``real_scenes_info.json`` (options, package versions and
SHA-256, scores, counts per scene and split).

The same options give byte-identical files (sorted lists, fixed rules, no
time stamps, no randomness). ``OUT`` is built in a temporary folder beside
it and renamed at the end: it is there whole or not at all; a finished
``OUT`` with the same options is left as it is.

Every clip keeps the licence of its source file; CC-BY and CC-BY-SA ask
for the credit that ``PROVENANCE.md`` and ``provenance.tsv`` give, and
CC-BY-SA and GPL ask that what is shared be shared alike.
"""

import argparse
import contextlib
import fnmatch
import gzip
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.ndimage import uniform_filter1d
from scipy.signal import resample_poly

from speechbrain_kd.soft_labels import file_sha256

FORMAT_VERSION = 1
INFO_FILE = "real_scenes_info.json"
SNAPSHOT = "20250520T000000Z"  # the Debian snapshot these versions are in
MIRRORS = (
    "http://deb.debian.org/debian/",
    f"http://snapshot.debian.org/archive/debian/{SNAPSHOT}/",
)

# The packages, pinned. ``root`` is the folder of the sounds inside the
# package or, with ``container``, inside that zip (``.pk3`` is a zip);
# ``upstream`` turns a path of the package into the path its Debian
# copyright file uses (``Files:`` patterns are relative to the upstream
# source tree).
PACKAGES = {
    "0ad": {
        "package": "0ad-data",
        "version": "0.0.26-1",
        "pool": "pool/main/0/0ad-data/0ad-data_0.0.26-1_all.deb",
        "size": 1377557908,
        "sha256": (
            "53745ae74d05bccf6783400fa98f3932b21729ab9d2e86151aa2c331c3455178"
        ),
        "copyright": "usr/share/doc/0ad-data/copyright",
        "container": "usr/share/games/0ad/mods/public/public.zip",
        "root": "audio/ambient/",
        "upstream": ("", "binaries/data/mods/public/"),
        "notes": ["audio/LICENSE.txt"],
    },
    "redeclipse": {
        "package": "redeclipse-data",
        "version": "1.6.0-1",
        "pool": "pool/main/r/redeclipse-data/redeclipse-data_1.6.0-1_all.deb",
        "size": 862260812,
        "sha256": (
            "ada26453d3100bd61154ce20a699352f0b48bb29f8505f477ebdcb612f71ab42"
        ),
        "copyright": "usr/share/doc/redeclipse-data/copyright",
        "container": None,
        "root": "usr/share/games/redeclipse/data/sounds/ambience/",
        "upstream": ("usr/share/games/redeclipse/", ""),
        "notes": [],
    },
    "stk": {
        "package": "supertuxkart-data",
        "version": "1.4+dfsg-2",
        "pool": (
            "pool/main/s/supertuxkart/supertuxkart-data_1.4+dfsg-2_all.deb"
        ),
        "size": 627742860,
        "sha256": (
            "568d69cda50dc8ad1facb89514bd14953dfca736fdb83c49ae330b0aa7dd2364"
        ),
        "copyright": "usr/share/doc/supertuxkart-data/copyright",
        "container": None,
        "root": "usr/share/games/supertuxkart/data/sfx/",
        "upstream": ("usr/share/games/supertuxkart/", ""),
        "notes": [],
    },
    "ufoai": {
        "package": "ufoai-sound",
        "version": "2.5-2",
        "pool": "pool/main/u/ufoai-music/ufoai-sound_2.5-2_all.deb",
        "size": 18681226,
        "sha256": (
            "0224308c10e1265581d1829f19eaef031175390fd0eafeb4a1d558ac6561ed4e"
        ),
        "copyright": "usr/share/doc/ufoai-sound/copyright",
        "container": "usr/share/games/ufoai/base/0snd.pk3",
        "root": "sound/ambience/",
        "upstream": ("", "base/"),
        "notes": [],
    },
}

# Which file is which scene: (package, pattern relative to the package's
# sound folder, scene). Patterns are fnmatch-style (``*`` any text, ``?``
# one character); the first rule that matches wins.
SCENE_RULES = (
    # rain
    ("0ad", "weather/rain_*.ogg", "rain"),
    ("redeclipse", "morph/rain.ogg", "rain"),
    ("redeclipse", "morph/stormrain.ogg", "rain"),
    ("stk", "rain.ogg", "rain"),
    # wind
    ("0ad", "weather/wind_*.ogg", "wind"),
    ("0ad", "weather/windgust_*.ogg", "wind"),
    ("0ad", "weather/windleaves_*.ogg", "wind"),
    ("0ad", "weather/windstorm_*.ogg", "wind"),
    ("0ad", "weather/snowstorm_*.ogg", "wind"),
    ("redeclipse", "wind.ogg", "wind"),
    ("redeclipse", "wastewind.ogg", "wind"),
    ("redeclipse", "blowwind.ogg", "wind"),
    ("redeclipse", "hollowwind.ogg", "wind"),
    ("redeclipse", "morph/wind?.ogg", "wind"),
    ("redeclipse", "morph/stormwind.ogg", "wind"),
    ("ufoai", "arcticwind.ogg", "wind"),
    # thunder (claps, rumble and the rain between them)
    ("0ad", "weather/thunder_*.ogg", "thunderstorm"),
    ("redeclipse", "morph/stormbolts.ogg", "thunderstorm"),
    ("ufoai", "thunder?.ogg", "thunderstorm"),
    ("stk", "thunder.ogg", "thunderstorm"),
    # birds in woods by day
    ("0ad", "dayscape/day_temperate_*.ogg", "forest_birds"),
    ("0ad", "dayscape/day_tropical_*.ogg", "forest_birds"),
    ("redeclipse", "forest?.ogg", "forest_birds"),
    ("stk", "exotic-birds*.ogg", "forest_birds"),
    # crickets, cicadas, a night chorus
    ("redeclipse", "nightcrickets.ogg", "insects"),
    ("redeclipse", "cycadas.ogg", "insects"),
    ("ufoai", "cricket_loop.ogg", "insects"),
    ("ufoai", "ufo_night_atm.ogg", "insects"),
    # running water: rivers, creeks, waterfalls, fountains
    ("0ad", "water/river_*.ogg", "stream"),
    ("0ad", "water/waterfall_*.ogg", "stream"),
    ("redeclipse", "creek.ogg", "stream"),
    ("redeclipse", "river.ogg", "stream"),
    ("redeclipse", "water.ogg", "stream"),
    ("redeclipse", "waterfall*.ogg", "stream"),
    ("stk", "river_loop.ogg", "stream"),
    ("stk", "waterfall_loop*.ogg", "stream"),
    ("ufoai", "water.ogg", "stream"),
    ("ufoai", "water0?.ogg", "stream"),
    ("ufoai", "waterfontain.ogg", "stream"),
    # surf on a shore (one package only, three distinct recordings)
    ("0ad", "water/wave*.ogg", "seashore"),
    # people: a market, a harbour, a restaurant
    ("0ad", "building/amb_trade_*.ogg", "market_crowd"),
    ("0ad", "building/amb_port_*.ogg", "market_crowd"),
    ("stk", "lenautile_restaurant.ogg", "market_crowd"),
    # fire: too little audio at 3 s (about 14 clips), so it is dropped
    # unless shorter clips are asked for
    ("ufoai", "fire*.ogg", "fire"),
    ("ufoai", "smallfire.ogg", "fire"),
    ("redeclipse", "fire.ogg", "fire"),
)
# Not used: 0ad building/amb_farm_* (a farmyard: no other package has one,
# and its audio recurs in amb_port_20), Red Eclipse's distant_cars and
# UFO:AI's city ambiences (one traffic recording only), and the many
# synthetic or machine sounds.

# Files that are one source by their credits, not by their audio:
# (package, pattern, reason).
SAME_SOURCE = (
    (
        "redeclipse",
        "waterfall*.ogg",
        "the copyright file credits all waterfall*.ogg to three Freesound "
        "takes by Tim Kahn (28656, 28657, 28659) without saying which file "
        "comes from which",
    ),
)

ALLOWED_LICENCES = {
    "CC0",
    "CC0-1.0",
    "public-domain",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-3.0+",
    "CC-BY-SA-4.0",
    "GPL-2",
    "GPL-2+",
    "GPL-3",
    "GPL-3+",
}
LICENCE_URLS = {
    "CC0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-3.0+": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "GPL-2": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "GPL-2+": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "GPL-3": "https://www.gnu.org/licenses/gpl-3.0.html",
    "GPL-3+": "https://www.gnu.org/licenses/gpl-3.0.html",
}

# Duplicate test (see the module docstring for the choice of threshold).
DUPLICATE_THRESHOLD = 0.40
FP_RATE = 16000
FP_NFFT = 512
FP_HOP = 320  # 20 ms
FP_BANDS = 24
FP_FMIN = 100.0
FP_FMAX = 7500.0
FP_RANGE_DB = 80.0
FP_SMOOTH = 13  # frames (0.26 s): slower level changes are removed
PROBE_SECONDS = 5.0
PROBES = 6
FP_PHASES = 4  # sub-frame offsets searched
FP_SILENCE_DBFS = -90.0  # quieter frames are not compared
PROBE_MIN_FRAMES = 50  # 1 s: the shortest probe

# Clips.
MIN_RMS_DBFS = -75.0
MAX_DROP_DB = 30.0
MIN_GROUPS_PER_SCENE = 3
MIN_CLIPS_PER_SCENE = 20
EXHAUSTIVE_SPLIT_GROUPS = 16


# --------------------------------------------------------------- naming


def scene_of(package, path, rules=SCENE_RULES):
    """The scene of a sound file, or None when no rule names it.

    Arguments
    ---------
    package : str
        Short package name, a key of :data:`PACKAGES`.
    path : str
        Path relative to the package's sound folder.
    rules : sequence of (package, pattern, scene)
        First match wins.

    Returns
    -------
    str or None

    Example
    -------
    >>> scene_of("0ad", "weather/rain_11.ogg")
    'rain'
    >>> scene_of("redeclipse", "forest2.ogg")
    'forest_birds'
    >>> scene_of("ufoai", "alienatmo.ogg") is None
    True
    """
    for rule_package, pattern, scene in rules:
        if rule_package == package and fnmatch.fnmatchcase(path, pattern):
            return scene
    return None


def sanitize(text):
    """Lower-case ``text`` with runs of other characters than [a-z0-9] as _.

    Example
    -------
    >>> sanitize("exotic-birds 2.OGG")
    'exotic_birds_2_ogg'
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def stem_key(path):
    """The name shared by the numbered loops of one take: folder and stem
    without a trailing number, in [a-z0-9_].

    Files of one package with the same key are one source group.

    Example
    -------
    >>> stem_key("weather/rain_11.ogg")
    'weather_rain'
    >>> stem_key("fire03.ogg"), stem_key("fire.ogg"), stem_key("smallfire.ogg")
    ('fire', 'fire', 'smallfire')
    >>> stem_key("morph/wind1.ogg"), stem_key("wind.ogg")
    ('morph_wind', 'wind')
    """
    folder, _, name = path.rpartition("/")
    stem = re.sub(r"[_-]?\d+$", "", name.rsplit(".", 1)[0]) or name
    return sanitize(f"{folder}_{stem}" if folder else stem)


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


# ---------------------------------------------------------------- audio


def to_stereo(audio):
    """Two channels: mono duplicated, more than two cut to the first two.

    Example
    -------
    >>> to_stereo(np.array([0.1, 0.2])).tolist()
    [[0.1, 0.1], [0.2, 0.2]]
    >>> to_stereo(np.zeros((4, 6))).shape
    (4, 2)
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1)
    return audio[:, :2]


def resample(audio, rate, new_rate):
    """Resample along the first axis with a polyphase filter.

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


def select_evenly(items, cap):
    """At most ``cap`` items, evenly spaced over the sequence, in order.

    Example
    -------
    >>> select_evenly(list(range(10)), 3)
    [1, 5, 8]
    >>> select_evenly("ab", 5)
    ['a', 'b']
    """
    items = list(items)
    if len(items) <= cap:
        return items
    return [items[(2 * i + 1) * len(items) // (2 * cap)] for i in range(cap)]


# ------------------------------------------------------ duplicate check


def mel_filterbank(n_fft, rate, bands, fmin, fmax):
    """Triangular HTK-mel filters, ``(n_fft // 2 + 1, bands)``.

    Example
    -------
    >>> fb = mel_filterbank(512, 16000, 24, 100.0, 7500.0)
    >>> fb.shape, bool((fb.sum(axis=0) > 0).all())
    ((257, 24), True)
    """

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0.0, rate / 2.0, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(fmin), mel(fmax), bands + 2))
    low, centre, high = edges[:-2], edges[1:-1], edges[2:]
    rise = (freqs[:, None] - low) / (centre - low)
    fall = (high - freqs[:, None]) / (high - centre)
    return np.maximum(0.0, np.minimum(rise, fall))


_FILTERBANK = mel_filterbank(FP_NFFT, FP_RATE, FP_BANDS, FP_FMIN, FP_FMAX)


def fingerprint(mono, rate, offset=0):
    """Log-mel fingerprint whose fine time structure identifies a recording.

    The mono signal is taken to 16 kHz and its first ``offset`` samples
    dropped; 24 mel bands (100-7500 Hz) of 512-point frames every 20 ms, in
    dB, floored 80 dB under the peak; the moving average over 13 frames
    (0.26 s) is subtracted in each band, and then the band mean. What is
    left is the fast texture of the recording (drops, bubbles, leaves): a
    gain or a static EQ only shifts a band, which the subtraction removes.
    Frames of (near) digital silence, RMS under -90 dBFS, and the 6 frames
    on each side of them are NaN: a step out of silence looks alike in any
    two files.

    Arguments
    ---------
    mono : numpy.ndarray
        Samples, ``(time,)``.
    rate : int
    offset : int
        Samples at 16 kHz to drop first (for sub-frame shifts).

    Returns
    -------
    numpy.ndarray
        ``(bands, frames)``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(16000)
    >>> x[8000:] = 0.0
    >>> f = fingerprint(x, 16000)
    >>> f.shape, int(np.isnan(f[0]).sum())  # the silent half, and its edge
    ((24, 49), 30)
    """
    x = resample(np.asarray(mono, dtype=np.float64), rate, FP_RATE)
    x = x[int(offset) :]
    if len(x) < FP_NFFT:
        x = np.pad(x, (0, FP_NFFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, FP_NFFT)[::FP_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(FP_NFFT), axis=1)) ** 2
    mel = power @ _FILTERBANK
    level = 10.0 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-20))
    quiet = (level < FP_SILENCE_DBFS).astype(float)
    quiet = uniform_filter1d(quiet, FP_SMOOTH, mode="nearest") > 0
    db = 10.0 * np.log10(np.maximum(mel, 1e-20))
    db = np.maximum(db, db.max() - FP_RANGE_DB).T
    fast = db - uniform_filter1d(db, FP_SMOOTH, axis=1, mode="nearest")
    if quiet.all():
        return np.full_like(fast, np.nan)
    fast = fast - fast[:, ~quiet].mean(axis=1, keepdims=True)
    fast[:, quiet] = np.nan
    return fast


def fingerprints(mono, rate):
    """:func:`fingerprint` at ``FP_PHASES`` offsets a fraction of a frame
    step apart (0, 80, 160 and 240 samples at 16 kHz), so that a copy
    shifted by any number of samples meets one of them within 40 samples.

    Example
    -------
    >>> [f.shape for f in fingerprints(np.ones(16000), 16000)]
    [(24, 49), (24, 49), (24, 48), (24, 48)]
    """
    x = resample(np.asarray(mono, dtype=np.float64), rate, FP_RATE)
    step = FP_HOP // FP_PHASES
    return [fingerprint(x, FP_RATE, k * step) for k in range(FP_PHASES)]


class _Target:
    """A fingerprint ready to be searched: NaN frames zeroed and marked,
    running sums for the windows' variance, spectra by FFT size."""

    def __init__(self, feats):
        bad = np.isnan(feats).any(axis=0)
        self.feats = np.where(bad, 0.0, feats)
        self.frames = feats.shape[1]
        zero = np.zeros((feats.shape[0], 1))
        self.c1 = np.concatenate([zero, np.cumsum(self.feats, axis=1)], 1)
        self.c2 = np.concatenate(
            [zero, np.cumsum(self.feats * self.feats, axis=1)], 1
        )
        self.bad = np.concatenate([[0], np.cumsum(bad)])
        self.spectra = {}

    def spectrum(self, n):
        if n not in self.spectra:
            self.spectra[n] = np.fft.rfft(self.feats, n, axis=1)
        return self.spectra[n]

    def windows(self, length):
        """Variance (summed over bands) of every window, and which count."""
        s1 = self.c1[:, length:] - self.c1[:, :-length]
        s2 = self.c2[:, length:] - self.c2[:, :-length]
        var = np.sum(s2 - s1 * s1 / length, axis=0)
        clean = (self.bad[length:] - self.bad[:-length]) == 0
        return var, clean & (var > 1e-9)


def _probes(feats):
    """Up to ``PROBES`` evenly spaced windows without NaN: (centred window,
    norm). Windows last ``PROBE_SECONDS``, or the longest run of clean
    frames when that is shorter (down to 1 s)."""
    clean = ~np.isnan(feats).any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], clean, [0]])))
    runs = edges[1::2] - edges[::2]
    longest = int(runs.max()) if len(runs) else 0
    length = min(int(round(PROBE_SECONDS * FP_RATE / FP_HOP)), longest)
    if length < min(PROBE_MIN_FRAMES, feats.shape[1]) or length < 2:
        return []
    bad = np.concatenate([[0], np.cumsum(~clean)])
    starts = np.flatnonzero(bad[length:] - bad[:-length] == 0)
    picks = starts[np.linspace(0, len(starts) - 1, PROBES).round().astype(int)]
    probes = []
    for start in np.unique(picks):
        p = feats[:, start : start + length]
        p = p - p.mean(axis=1, keepdims=True)
        norm = float(np.sqrt(np.sum(p * p)))
        if norm > 0:
            probes.append((p, norm))
    return probes


def _best_match(probes, targets):
    """Highest NCC of any probe against any window of any target (phase)."""
    best, spectra = -1.0, {}
    for target in targets:
        for index, (p, norm) in enumerate(probes):
            length = p.shape[1]
            if length > target.frames:
                continue
            n = 1 << (target.frames + length - 1).bit_length()
            if (index, n) not in spectra:
                spectra[(index, n)] = np.conj(np.fft.rfft(p, n, axis=1))
            product = target.spectrum(n) * spectra[(index, n)]
            num = np.fft.irfft(product.sum(axis=0), n)
            num = num[: target.frames - length + 1]
            var, ok = target.windows(length)
            if ok.any():
                r = num[ok] / (norm * np.sqrt(var[ok]))
                best = max(best, float(np.clip(r, -1.0, 1.0).max()))
    return best


def _as_phases(prints):
    return [prints] if isinstance(prints, np.ndarray) else list(prints)


def similarity(a, b):
    """How much two recordings look like one, in [-1, 1].

    The highest normalised cross-correlation, over all time shifts, of up
    to six evenly spaced 5-s probes of each one's fingerprint against every
    window of the other's (band means removed in each window; windows that
    touch a NaN frame are not used). ``a`` and ``b`` are fingerprints or
    lists of phases (:func:`fingerprints`): probes come from the first
    phase and meet every phase of the other.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.standard_normal(8 * 16000)
    >>> copy = 0.3 * np.roll(x, 4321)  # quieter, shifted by 13.5 frames
    >>> other = rng.standard_normal(8 * 16000)
    >>> fx, fc, fo = (fingerprints(s, 16000) for s in (x, copy, other))
    >>> similarity(fx, fc) > 0.9, similarity(fx, fo) < 0.2
    (True, True)
    """
    a, b = _as_phases(a), _as_phases(b)
    return max(
        _best_match(_probes(a[0]), [_Target(f) for f in b]),
        _best_match(_probes(b[0]), [_Target(f) for f in a]),
    )


class _Groups:
    """Union-find over keys; each group named by its smallest key."""

    def __init__(self, keys):
        self.parent = {key: key for key in keys}

    def find(self, key):
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def groups(self):
        out = {}
        for key in sorted(self.parent):
            out.setdefault(self.find(key), []).append(key)
        return sorted(tuple(members) for members in out.values())


def group_sources(prints, threshold=DUPLICATE_THRESHOLD, links=()):
    """Join files into source groups: audio matches and given links.

    Arguments
    ---------
    prints : dict
        Key (any sortable) -> fingerprint, or list of phases
        (:func:`fingerprints`).
    threshold : float
        Pairs whose :func:`similarity` is at least this are one source.
    links : iterable of (key, key)
        Pairs that are one source whatever their audio.

    Returns
    -------
    groups : list of tuple
        Sorted tuples of keys, sorted; joined transitively.
    scores : dict
        ``(key, key)`` (sorted pair) -> similarity, for every pair.

    Example
    -------
    >>> rng = np.random.default_rng(2)
    >>> x = rng.standard_normal(6 * 16000)
    >>> prints = {
    ...     "a": fingerprints(x, 16000),
    ...     "b": fingerprints(1.5 * np.roll(x, 999), 16000),
    ...     "c": fingerprints(rng.standard_normal(6 * 16000), 16000),
    ...     "d": fingerprints(rng.standard_normal(6 * 16000), 16000),
    ... }
    >>> group_sources(prints, links=[("c", "d")])[0]
    [('a', 'b'), ('c', 'd')]
    """
    keys = sorted(prints)
    phases = {key: _as_phases(prints[key]) for key in keys}
    probes = {key: _probes(phases[key][0]) for key in keys}
    directed = {}
    for target_key in keys:  # one target's spectra in memory at a time
        targets = [_Target(f) for f in phases[target_key]]
        for key in keys:
            if key != target_key:
                directed[(key, target_key)] = _best_match(probes[key], targets)
    union = _Groups(keys)
    scores = {}
    for a, b in itertools.combinations(keys, 2):
        scores[(a, b)] = max(directed[(a, b)], directed[(b, a)])
        if scores[(a, b)] >= threshold:
            union.union(a, b)
    for a, b in links:
        union.union(a, b)
    return union.groups(), scores


# ---------------------------------------------------------------- split


def _rank(name):
    return hashlib.sha256(str(name).encode()).hexdigest(), str(name)


def assign_split(counts, train_fraction):
    """Put whole groups on the training or the evaluation side.

    For each scene (in sorted order), among the assignments of its groups
    that leave both sides non-empty, the one whose share of training clips
    is nearest ``train_fraction``; ties go to the assignment that trains on
    the groups first in SHA-256 order. A group seen in an earlier scene
    keeps its side. Over 16 free groups in a scene, a greedy pass in that
    order replaces the search.

    Arguments
    ---------
    counts : dict
        scene -> {group: number of clips}.
    train_fraction : float

    Returns
    -------
    dict
        group -> ``"train"`` or ``"evaluate"``.

    Example
    -------
    >>> counts = {"rain": {"r1": 20, "r2": 5, "r3": 5},
    ...           "wind": {"w1": 10, "w2": 10, "w3": 10}}
    >>> side = assign_split(counts, 0.7)
    >>> sorted(g for g, s in side.items() if s == "evaluate")
    ['r2', 'r3', 'w1']
    """
    side = {}
    for scene in sorted(counts):
        sizes = counts[scene]
        groups = sorted(sizes, key=_rank)
        free = [g for g in groups if g not in side]
        total = sum(sizes.values())
        target = train_fraction * total
        fixed_train = sum(sizes[g] for g in groups if side.get(g) == "train")
        fixed_sides = {side[g] for g in groups if g in side}
        if len(free) > EXHAUSTIVE_SPLIT_GROUPS:
            chosen = _greedy_split(free, sizes, target - fixed_train)
        else:
            chosen, best = None, None
            for choice in itertools.product((True, False), repeat=len(free)):
                sides = fixed_sides | {
                    "train" if c else "evaluate" for c in choice
                }
                if sides != {"train", "evaluate"}:
                    continue
                train = fixed_train + sum(
                    sizes[g] for g, c in zip(free, choice, strict=True) if c
                )
                gap = abs(train - target)
                if best is None or gap < best:
                    chosen, best = choice, gap
        if chosen is None:
            raise ValueError(
                f"scene {scene!r} cannot be on both sides: its groups are "
                f"{groups} (sides so far {fixed_sides or 'none'})"
            )
        for group, train in zip(free, chosen, strict=True):
            side[group] = "train" if train else "evaluate"
    return side


def _greedy_split(free, sizes, target):
    taken, choice = 0, []
    for group in free:
        size = sizes[group]
        keep = abs(taken + size - target) < abs(taken - target)
        choice.append(keep)
        taken += size if keep else 0
    if all(choice):
        choice[-1] = False
    if not any(choice):
        choice[0] = True
    return tuple(choice)


# -------------------------------------------------------------- licences


def parse_dep5(text):
    """The ``Files:`` stanzas of a machine-readable Debian copyright file.

    Returns
    -------
    list of dict
        ``files`` (list of patterns), ``copyright`` (list of lines),
        ``license`` (the short name), ``comment`` (text), in file order.

    Example
    -------
    >>> text = (
    ...     "Format: https://www.debian.org/doc/packaging-manuals/"
    ...     "copyright-format/1.0/\\n\\n"
    ...     "Files: *\\nCopyright: 2010 Team\\nLicense: GPL-2+\\n\\n"
    ...     "Files:\\n data/sfx/rain.ogg\\n data/sfx/wind.ogg\\n"
    ...     "Copyright:\\n 2009 Ann\\n 2011 Bob\\nLicense: CC-BY-3.0\\n"
    ...     "Comment: From soundbible.\\n"
    ... )
    >>> [s["files"] for s in parse_dep5(text)]
    [['*'], ['data/sfx/rain.ogg', 'data/sfx/wind.ogg']]
    >>> parse_dep5(text)[1]["copyright"], parse_dep5(text)[1]["license"]
    (['2009 Ann', '2011 Bob'], 'CC-BY-3.0')
    """
    stanzas = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields, name = {}, None
        for line in block.splitlines():
            match = re.match(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$", line)
            if match and not line[:1].isspace():
                name = match.group(1).lower()
                fields[name] = [match.group(2).rstrip()]
            elif name is not None and line[:1].isspace():
                fields[name].append(line.strip())
        if "files" not in fields:
            continue
        lines = [v for v in fields.get("copyright", []) if v and v != "."]
        comment = [v for v in fields.get("comment", []) if v and v != "."]
        stanzas.append(
            {
                "files": " ".join(fields["files"]).split(),
                "copyright": lines,
                "license": (fields.get("license") or [""])[0].strip(),
                "comment": " ".join(comment),
            }
        )
    return stanzas


def _dep5_match(path, pattern):
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, path) is not None


def licence_for(stanzas, path):
    """The last ``Files:`` stanza that matches ``path`` (DEP-5 rules), or None.

    Example
    -------
    >>> stanzas = [
    ...     {"files": ["*"], "copyright": ["Team"], "license": "GPL-2+",
    ...      "comment": ""},
    ...     {"files": ["data/sfx/r?in.ogg"], "copyright": ["Ann"],
    ...      "license": "CC0", "comment": ""},
    ... ]
    >>> licence_for(stanzas, "data/sfx/rain.ogg")["license"]
    'CC0'
    >>> licence_for(stanzas, "data/sfx/wind.ogg")["license"]
    'GPL-2+'
    """
    found = None
    for stanza in stanzas:
        if any(_dep5_match(path, p) for p in stanza["files"]):
            found = stanza
    return found


def licence_ok(expression):
    """Whether a DEP-5 licence expression offers an allowed licence.

    Example
    -------
    >>> licence_ok("CC-BY-SA-3.0 or GPL-3"), licence_ok("Proprietary")
    (True, False)
    """
    terms = re.split(r"\s+and\s+", expression.strip())
    return all(
        any(choice in ALLOWED_LICENCES for choice in re.split(r"\s+or\s+", t))
        for t in terms
    )


# ------------------------------------------------------------- packages


def fetch_deb(spec, cache):
    """The ``.deb`` of ``spec`` in ``cache/debs``, downloaded when missing.

    ``apt-get download PACKAGE=VERSION`` first; without apt, or when it
    fails, the pinned pool path on each of :data:`MIRRORS`. The file must
    have the pinned SHA-256. No example: it needs the network.
    """
    folder = Path(cache) / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(spec["pool"]).name
    if path.is_file() and file_sha256(path) == spec["sha256"]:
        return path
    errors = []
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        tmp = Path(tmp)
        target = f"{spec['package']}={spec['version']}"
        print(f"downloading {target} ({spec['size'] / 1e6:.0f} MB)", flush=True)
        try:
            subprocess.run(
                ["apt-get", "download", target],
                cwd=tmp,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            got = sorted(tmp.glob("*.deb"))
            if len(got) != 1:
                raise OSError(f"apt-get download gave {got}")
            _accept(got[0], spec, path)
            return path
        except (OSError, subprocess.CalledProcessError, ValueError) as error:
            errors.append(f"apt-get download: {error}")
        for mirror in MIRRORS:
            url = mirror + spec["pool"]
            part = tmp / "part.deb"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    with open(part, "wb") as f:
                        shutil.copyfileobj(response, f, 1 << 20)
                _accept(part, spec, path)
                return path
            except (OSError, ValueError) as error:
                errors.append(f"{url}: {error}")
    raise RuntimeError(
        f"could not fetch {spec['package']} {spec['version']}:\n  "
        + "\n  ".join(errors)
    )


def _accept(candidate, spec, path):
    digest = file_sha256(candidate)
    if digest != spec["sha256"]:
        raise ValueError(
            f"{candidate.name}: SHA-256 {digest}, expected {spec['sha256']}"
        )
    os.replace(candidate, path)


class _Limited(io.RawIOBase):
    """Reads at most ``size`` bytes of ``f`` from where it stands."""

    def __init__(self, f, size):
        self.f, self.left = f, size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        data = self.f.read(n) if n else b""
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)


@contextlib.contextmanager
def deb_data_tar(deb):
    """Stream the ``data.tar`` of a ``.deb`` (an ``ar`` archive) as a tar.

    ``.xz`` and ``.gz`` members are read (bookworm uses them); the tar is
    opened in stream mode (``r|``): members in order, once.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> data = io.BytesIO()
    >>> with tarfile.open(fileobj=data, mode="w:gz") as tar:
    ...     info = tarfile.TarInfo("./usr/share/x.txt")
    ...     info.size = 2
    ...     tar.addfile(info, io.BytesIO(b"hi"))
    >>> body = data.getvalue()
    >>> def ar_header(name, size):
    ...     return f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{size:<10}`\\n"
    >>> deb = folder / "x.deb"
    >>> _ = deb.write_bytes(
    ...     b"!<arch>\\n" + ar_header("debian-binary", 4).encode()
    ...     + b"2.0\\n" + ar_header("data.tar.gz", len(body)).encode() + body
    ... )
    >>> with deb_data_tar(deb) as tar:
    ...     print([m.name for m in tar])
    ['./usr/share/x.txt']
    """
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb} is not a .deb (ar) archive")
        while True:
            header = f.read(60)
            if len(header) < 60:
                raise ValueError(f"{deb} has no data.tar member")
            name = header[:16].decode("ascii").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                break
            f.seek(size + (size & 1), os.SEEK_CUR)
        raw = io.BufferedReader(_Limited(f, size), 1 << 20)
        if name.endswith(".xz"):
            stream = lzma.open(raw)
        elif name.endswith(".gz"):
            stream = gzip.open(raw)
        elif name == "data.tar":
            stream = raw
        else:
            raise ValueError(f"{deb}: {name} is not supported (xz, gz)")
        with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar


def wanted_paths(short, spec, rules=SCENE_RULES):
    """The in-package patterns to take out of a package: its sound rules,
    its copyright file and licence notes. Container members are written
    ``container!/member``.

    Example
    -------
    >>> wanted_paths("ufoai", PACKAGES["ufoai"])[:2]
    ['usr/share/doc/ufoai-sound/copyright', \
'usr/share/games/ufoai/base/0snd.pk3!/sound/ambience/arcticwind.ogg']
    """
    inner = [spec["root"] + p for k, p, _ in rules if k == short]
    inner += list(spec["notes"])
    if spec["container"]:
        inner = [f"{spec['container']}!/{p}" for p in inner]
    return [spec["copyright"], *sorted(set(inner))]


def _safe_target(folder, name):
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"unsafe path {name!r} in a package")
    return folder.joinpath(*parts)


def _write_member(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def extract_package(short, spec, cache, rules=SCENE_RULES):
    """Take the wanted files out of a package into ``cache/files``.

    Reuses an earlier extraction of the same ``.deb`` and patterns (its
    ``.complete.json`` says which); otherwise fetches the ``.deb``
    (:func:`fetch_deb`) and extracts into a temporary folder renamed at the
    end. A container member (zip) is spooled to a temporary file, read,
    and deleted. Tested on a synthetic package in
    ``tests/unittests/test_real_scenes.py``.

    Returns
    -------
    pathlib.Path
        The folder that mirrors the package's paths (``container!/``
        for members of a container).
    """
    files = Path(cache) / "files"
    base = files / f"{short}_{sanitize(spec['version'])}"
    patterns = wanted_paths(short, spec, rules)
    want = {
        "format": FORMAT_VERSION,
        "sha256": spec["sha256"],
        "patterns": patterns,
    }
    marker = base / ".complete.json"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return base
    deb = fetch_deb(spec, cache)
    print(f"extracting from {deb.name}", flush=True)
    files.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=files, prefix=f".{short}-"))
    try:
        _extract(deb, spec, patterns, tmp)
        (tmp / ".complete.json").write_text(json.dumps(want, indent=1))
        if base.exists():
            shutil.rmtree(base)
        os.replace(tmp, base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return base


def _extract(deb, spec, patterns, dest):
    def wanted(name):
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    container = spec["container"]
    found_container = False
    with deb_data_tar(deb) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name == container and member.isfile():
                found_container = True
                with tempfile.TemporaryFile(dir=dest) as spool:
                    shutil.copyfileobj(tar.extractfile(member), spool, 1 << 20)
                    spool.seek(0)
                    with zipfile.ZipFile(spool) as zf:
                        for info in sorted(zf.infolist(), key=_zip_name):
                            inner = f"{name}!/{info.filename}"
                            if info.is_dir() or not wanted(inner):
                                continue
                            with zf.open(info) as source:
                                _write_member(source, _safe_target(dest, inner))
            elif wanted(name):
                if not member.isfile():
                    print(f"  skipped {name}: not a plain file", flush=True)
                    continue
                _write_member(tar.extractfile(member), _safe_target(dest, name))
    if container and not found_container:
        raise ValueError(f"{deb} has no {container}")
    if not (dest / spec["copyright"]).is_file():
        raise ValueError(f"{deb} has no {spec['copyright']}")


def _zip_name(info):
    return info.filename


# ---------------------------------------------------------------- files


def write_clip(path, audio, rate):
    """Write a clip as 16-bit PCM WAV (samples clipped to [-1, 1]).

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "c.wav"
    >>> write_clip(path, np.zeros((80, 2)), 8000)
    >>> soundfile.info(str(path)).subtype, soundfile.info(str(path)).channels
    ('PCM_16', 2)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(
        str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16"
    )


def _write_lines(path, header, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join([header, *lines]) + "\n")


def write_tau_lists(folder, clips):
    """Write ``meta.csv`` and ``evaluation_setup/fold1_*.csv``.

    Arguments
    ---------
    folder : pathlib.Path
    clips : list of dict
        ``filename``, ``scene``, ``identifier`` and ``split`` (``"train"``
        or ``"evaluate"``) of each clip.

    Returns
    -------
    dict
        Number of clips per split.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> clips = [
    ...     {"filename": "audio/rain-x_a-0-a.wav", "scene": "rain",
    ...      "identifier": "x_a", "split": "train"},
    ...     {"filename": "audio/rain-x_b-0-a.wav", "scene": "rain",
    ...      "identifier": "x_b", "split": "evaluate"},
    ... ]
    >>> write_tau_lists(folder, clips)
    {'train': 1, 'evaluate': 1}
    >>> print((folder / "meta.csv").read_text(), end="")
    filename	scene_label	identifier	source_label
    audio/rain-x_a-0-a.wav	rain	x_a	a
    audio/rain-x_b-0-a.wav	rain	x_b	a
    """
    clips = sorted(clips, key=lambda c: c["filename"])
    meta = [
        f"{c['filename']}\t{c['scene']}\t{c['identifier']}\ta" for c in clips
    ]
    _write_lines(
        folder / "meta.csv",
        "filename\tscene_label\tidentifier\tsource_label",
        meta,
    )
    setup = folder / "evaluation_setup"
    counts = {}
    for split in ("train", "evaluate"):
        rows = [c for c in clips if c["split"] == split]
        counts[split] = len(rows)
        _write_lines(
            setup / f"fold1_{split}.csv",
            "filename\tscene_label",
            [f"{c['filename']}\t{c['scene']}" for c in rows],
        )
        if split == "evaluate":
            _write_lines(
                setup / "fold1_test.csv",
                "filename",
                [c["filename"] for c in rows],
            )
    return counts


def write_tau_layout(folder, clips, rate):
    """Write the clips' audio and the TAU lists (:func:`write_tau_lists`).

    Each clip also has ``audio``, ``(time, 2)`` samples.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> clips = [
    ...     {"filename": tau_filename("rain", "p_a", 0), "scene": "rain",
    ...      "identifier": "p_a", "split": "train",
    ...      "audio": np.zeros((800, 2))},
    ... ]
    >>> write_tau_layout(folder, clips, 8000)
    {'train': 1, 'evaluate': 0}
    >>> sorted(p.name for p in (folder / "audio").iterdir())
    ['rain-p_a-0-a.wav']
    """
    for clip in clips:
        write_clip(folder / clip["filename"], clip["audio"], rate)
    return write_tau_lists(folder, clips)


# ---------------------------------------------------------------- build


def _source_path(spec, rel):
    inner = spec["root"] + rel
    if spec["container"]:
        return f"{spec['container']}!/{inner}"
    return inner


def _upstream_path(spec, path):
    inner = path.split("!/", 1)[1] if spec["container"] else path
    strip, add = spec["upstream"]
    return add + inner.removeprefix(strip)


def _list_sources(packages, bases, rules, seconds):
    """Candidate files: (short, rel) -> info, and the files left out."""
    sources, skipped = {}, []
    for short, spec in sorted(packages.items()):
        base = bases[short]
        stanzas = parse_dep5((base / spec["copyright"]).read_text("utf-8"))
        root = base.joinpath(*Path(_source_path(spec, "x")).parent.parts)
        if not root.is_dir():
            continue
        for file in sorted(root.rglob("*")):
            if not file.is_file():
                continue
            rel = file.relative_to(root).as_posix()
            scene = scene_of(short, rel, rules)
            if scene is None:
                continue
            path = _source_path(spec, rel)
            where = f"{spec['package']}:{path}"
            stanza = licence_for(stanzas, _upstream_path(spec, path))
            if stanza is None or not licence_ok(stanza["license"]):
                licence = stanza["license"] if stanza else "none"
                skipped.append(f"{where}: licence {licence} not allowed")
                continue
            try:
                info = soundfile.info(str(file))
            except Exception as error:  # listed with the file, not hidden
                skipped.append(f"{where}: not readable ({error})")
                continue
            duration = info.frames / info.samplerate
            if duration < seconds:
                skipped.append(
                    f"{where}: {duration:.2f} s, shorter than one clip"
                )
                continue
            sources[(short, rel)] = {
                "file": file,
                "scene": scene,
                "path": path,
                "licence": stanza["license"],
                "copyright": stanza["copyright"],
                "comment": stanza["comment"],
                "sha256": file_sha256(file),
                "rate": info.samplerate,
                "channels": info.channels,
                "duration": duration,
            }
    return sources, skipped


def _read(file):
    audio, rate = soundfile.read(str(file), dtype="float64", always_2d=True)
    return audio, rate


def _links(sources, same_source):
    """Pairs joined without audio: identical bytes, numbered loops, notes."""
    links, by_digest, by_stem, by_note = [], {}, {}, {}
    for key in sorted(sources):
        short, rel = key
        info = sources[key]
        by_digest.setdefault(info["sha256"], []).append(key)
        credit = (info["licence"], tuple(info["copyright"]))
        by_stem.setdefault((short, stem_key(rel), credit), []).append(key)
        for package, pattern, _ in same_source:
            if package == short and fnmatch.fnmatchcase(rel, pattern):
                by_note.setdefault((package, pattern), []).append(key)
    for table in (by_digest, by_stem, by_note):
        for keys in table.values():
            links += [(keys[0], other) for other in keys[1:]]
    return links


def _group_names(groups):
    names, used = {}, set()
    for members in groups:
        short, rel = members[0]
        name = f"{short}_{stem_key(rel)}"
        unique, n = name, 2
        while unique in used:
            unique, n = f"{name}_{n}", n + 1
        used.add(unique)
        for key in members:
            names[key] = unique
    return names


def _histogram(values, edges):
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=edges)
    return [
        {"from": round(float(a), 2), "to": round(float(b), 2), "n": int(n)}
        for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def check_options(seconds, sample_rate, max_clips_per_source, train_fraction):
    """Refuse options that cannot give a sensible set.

    Example
    -------
    >>> check_options(3.0, 16000, 20, 0.7)
    >>> check_options(3.0, 16000, 20, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: train_fraction must be in (0, 1), got 1.0
    """
    if not 0.5 <= seconds <= 10:
        raise ValueError(f"seconds must be in [0.5, 10], got {seconds}")
    if not 8000 <= sample_rate <= 48000:
        raise ValueError(
            f"sample_rate must be in [8000, 48000], got {sample_rate}"
        )
    if max_clips_per_source < 1:
        raise ValueError(
            f"max_clips_per_source must be >= 1, got {max_clips_per_source}"
        )
    if not 0 < train_fraction < 1:
        raise ValueError(
            f"train_fraction must be in (0, 1), got {train_fraction}"
        )


def build(
    out,
    cache=None,
    seconds=3.0,
    sample_rate=16000,
    max_clips_per_source=20,
    train_fraction=0.7,
    packages=None,
    rules=SCENE_RULES,
    same_source=SAME_SOURCE,
):
    """Build the set in ``out`` (see the module docstring).

    ``packages`` (default :data:`PACKAGES`), ``rules`` and ``same_source``
    can be replaced, e.g. by synthetic packages in tests. Returns the
    summary written to ``real_scenes_info.json``. Tested on synthetic
    packages in ``tests/unittests/test_real_scenes.py`` (the real ones are
    a 2.9 GB download).
    """
    started = time.monotonic()
    check_options(seconds, sample_rate, max_clips_per_source, train_fraction)
    packages = PACKAGES if packages is None else packages
    out = Path(out).absolute()
    cache = Path(cache) if cache else out.with_name(out.name + ".cache")
    options = {
        "format_version": FORMAT_VERSION,
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "max_clips_per_source": int(max_clips_per_source),
        "train_fraction": float(train_fraction),
    }
    previous = _read_info(out)
    if previous is not None and previous.get("options") == options:
        print(f"{out} is already built with these options", flush=True)
        return previous
    if out.exists() and previous is None and any(out.iterdir()):
        raise FileExistsError(
            f"{out} exists and is not a set this script built: not touched"
        )

    bases = {
        short: extract_package(short, spec, cache, rules)
        for short, spec in sorted(packages.items())
    }
    sources, skipped = _list_sources(packages, bases, rules, seconds)
    if not sources:
        raise ValueError("no usable sound file: check the rules")
    print(f"{len(sources)} source files; fingerprinting", flush=True)

    prints, windows = {}, {}
    for key in sorted(sources):
        audio, rate = _read(sources[key]["file"])
        prints[key] = fingerprints(audio.mean(axis=1), rate)
        clip_audio = to_stereo(resample(audio, rate, sample_rate))
        windows[key] = clip_windows(clip_audio, sample_rate, seconds)
    groups, scores = group_sources(
        prints, DUPLICATE_THRESHOLD, _links(sources, same_source)
    )
    names = _group_names(groups)
    score_report = _report_scores(scores, names)

    # Clips per (scene, group), evenly spaced, capped.
    chosen = {}
    for key in sorted(sources):
        scene = sources[key]["scene"]
        for start, stop, _ in windows[key]:
            chosen.setdefault((scene, names[key]), []).append(
                (key, start, stop)
            )
    for pair, items in chosen.items():
        chosen[pair] = select_evenly(items, max_clips_per_source)
    counts, dropped = {}, {}
    for (scene, group), items in sorted(chosen.items()):
        counts.setdefault(scene, {})[group] = len(items)
    for scene in sorted(counts):
        n_groups, n_clips = len(counts[scene]), sum(counts[scene].values())
        if n_groups < MIN_GROUPS_PER_SCENE or n_clips < MIN_CLIPS_PER_SCENE:
            dropped[scene] = f"{n_groups} source groups, {n_clips} clips"
            del counts[scene]
    if len(counts) < 2:
        raise ValueError(f"fewer than two scenes are left ({dropped})")
    side = assign_split(counts, train_fraction)

    clips = []
    for (scene, group), items in sorted(chosen.items()):
        if scene not in counts:
            continue
        for segment, (key, start, stop) in enumerate(items):
            clips.append(
                {
                    "filename": tau_filename(scene, group, segment),
                    "scene": scene,
                    "identifier": group,
                    "split": side[group],
                    "key": key,
                    "start": start,
                    "stop": stop,
                }
            )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        by_key = {}
        for clip in clips:
            by_key.setdefault(clip["key"], []).append(clip)
        for key in sorted(by_key):
            audio, rate = _read(sources[key]["file"])
            audio = to_stereo(resample(audio, rate, sample_rate))
            for clip in by_key[key]:
                write_clip(
                    tmp / clip["filename"],
                    audio[clip["start"] : clip["stop"]],
                    sample_rate,
                )
        split_counts = write_tau_lists(tmp, clips)
        info = _summary(
            options,
            packages,
            sources,
            groups,
            names,
            clips,
            counts,
            dropped,
            skipped,
            score_report,
            split_counts,
        )
        _write_provenance(tmp, info, packages, sources, clips, sample_rate)
        _copy_licences(tmp, packages, bases)
        (tmp / INFO_FILE).write_text(
            json.dumps(info, indent=1, sort_keys=True) + "\n", "utf-8"
        )
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _print_summary(info, time.monotonic() - started)
    return info


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


def _report_scores(scores, names):
    edges = np.round(np.arange(-0.1, 1.0001, 0.05), 2)
    cross = [s for (a, b), s in scores.items() if a[0] != b[0]]
    same = [s for (a, b), s in scores.items() if a[0] == b[0]]
    top = sorted(
        ((s, a, b) for (a, b), s in scores.items() if s >= 0.3),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    return {
        "threshold": DUPLICATE_THRESHOLD,
        "pairs": len(scores),
        "histogram_all": _histogram(list(scores.values()), edges),
        "histogram_different_packages": _histogram(cross, edges),
        "max_different_packages": round(max(cross), 4) if cross else None,
        "p99_different_packages": (
            round(float(np.percentile(cross, 99)), 4) if cross else None
        ),
        "max_same_package": round(max(same), 4) if same else None,
        "pairs_at_least_0.3": [
            {
                "score": round(s, 4),
                "a": f"{a[0]}:{a[1]}",
                "b": f"{b[0]}:{b[1]}",
                "joined": s >= DUPLICATE_THRESHOLD,
                "same_group": names[a] == names[b],
            }
            for s, a, b in top
        ],
    }


def _summary(
    options,
    packages,
    sources,
    groups,
    names,
    clips,
    counts,
    dropped,
    skipped,
    score_report,
    split_counts,
):
    per_scene = {}
    for clip in clips:
        entry = per_scene.setdefault(
            clip["scene"],
            {"train": 0, "evaluate": 0, "groups_train": [], "groups_eval": []},
        )
        entry[clip["split"]] += 1
        side = "groups_train" if clip["split"] == "train" else "groups_eval"
        if clip["identifier"] not in entry[side]:
            entry[side].append(clip["identifier"])
    used = {clip["key"] for clip in clips}
    return {
        "options": options,
        "packages": {
            spec["package"]: {
                "version": spec["version"],
                "sha256": spec["sha256"],
                "size": spec["size"],
                "pool": spec["pool"],
            }
            for _, spec in sorted(packages.items())
        },
        "duplicate_check": score_report,
        "groups": {
            names[members[0]]: {
                "scene": sorted({sources[k]["scene"] for k in members}),
                "files": [f"{k[0]}:{k[1]}" for k in members],
            }
            for members in groups
        },
        "scenes": {scene: per_scene[scene] for scene in sorted(per_scene)},
        "counts": split_counts,
        "clips": len(clips),
        "source_files": len(sources),
        "source_files_used": len(used),
        "dropped_scenes": dropped,
        "skipped_files": skipped,
        "scene_groups": {s: sorted(g) for s, g in sorted(counts.items())},
    }


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _write_provenance(folder, info, packages, sources, clips, rate):
    by_name = {spec["package"]: spec for spec in packages.values()}
    rows = []
    for clip in sorted(clips, key=lambda c: c["filename"]):
        short, _ = clip["key"]
        src = sources[clip["key"]]
        spec = packages[short]
        rows.append(
            "\t".join(
                [
                    clip["filename"],
                    clip["scene"],
                    clip["identifier"],
                    clip["split"],
                    spec["package"],
                    spec["version"],
                    src["path"],
                    src["licence"],
                    "; ".join(src["copyright"]),
                    f"{clip['start'] / rate:.3f}",
                    f"{clip['stop'] / rate:.3f}",
                ]
            )
        )
    _write_lines(
        folder / "provenance.tsv",
        "filename\tscene_label\tidentifier\tsplit\tpackage\tversion\t"
        "source_path\tlicense\tcopyright\tstart_s\tend_s",
        rows,
    )

    options = info["options"]
    check = info["duplicate_check"]
    lines = [
        "# Provenance of this acoustic-scene set",
        "",
        "Built by `benchmarks/real_scenes.py` (speechbrain-kd) with "
        f"clips of {options['seconds']:g} s at {options['sample_rate']} Hz "
        f"(2 channels, 16-bit PCM), at most "
        f"{options['max_clips_per_source']} clips per source group, "
        f"{options['train_fraction']:g} of each scene's clips for training. "
        "Every clip is an excerpt of one recording from a Debian 12 "
        "package, resampled, mixed to two channels (mono duplicated, more "
        "than two: the first two) and cut; nothing else is changed, "
        "levels included. Each clip keeps the licence of its source; the "
        "credits below are those of the packages' copyright files "
        "(copied to `licenses/`).",
        "",
        "Per clip (package, version, path inside the package, licence, "
        "credit, start and end in seconds): `provenance.tsv`.",
        "",
        "## Packages",
        "",
        "| package | version | .deb SHA-256 | bytes |",
        "|---|---|---|---|",
    ]
    for name, entry in sorted(info["packages"].items()):
        lines.append(
            f"| {name} | {entry['version']} | `{entry['sha256']}` | "
            f"{entry['size']} |"
        )
    lines += [
        "",
        "From http://deb.debian.org/debian/ (pool paths in "
        "`real_scenes_info.json`).",
        "",
        "## Licences",
        "",
    ]
    for licence in sorted({sources[c["key"]]["licence"] for c in clips}):
        urls = [
            LICENCE_URLS[p]
            for p in re.split(r"\s+or\s+", licence)
            if p in LICENCE_URLS
        ]
        lines.append(f"- {licence}: {', '.join(urls) or 'see licenses/'}")
    if "0ad-data" in by_name:
        lines.append(
            "- 0 A.D. audio: `audio/LICENSE.txt` asks for credit to "
            '"Wildfire Games" with links to '
            "http://creativecommons.org/licenses/by-sa/3.0/ and "
            "http://www.wildfiregames.com/ (copied to licenses/)."
        )
    lines += [
        "",
        "## Source groups (recordings) and the duplicate check",
        "",
        "Files are one group (one TAU `identifier`, never on both sides of "
        "the split) when byte-identical, when their names differ only by a "
        "trailing number in one folder of one package and their credits "
        "are the same, when a copyright "
        "note says so, or when their audio matches: the normalised "
        "cross-correlation over time shifts of 5-s probes of log-mel "
        "fingerprints with slow level changes removed (gain- and "
        f"shift-invariant) at least {check['threshold']:.2f}. Of "
        f"{check['pairs']} file pairs, those from different packages "
        "(certainly different recordings) score at most "
        f"{check['max_different_packages']} (99th percentile "
        f"{check['p99_different_packages']}).",
        "",
        "| score | file | file | joined by audio | same group |",
        "|---|---|---|---|---|",
    ]
    for pair in check["pairs_at_least_0.3"]:
        lines.append(
            f"| {pair['score']:.3f} | {pair['a']} | {pair['b']} | "
            f"{'yes' if pair['joined'] else 'no'} | "
            f"{'yes' if pair['same_group'] else 'no'} |"
        )
    for package, pattern, reason in SAME_SOURCE:
        lines.append("")
        lines.append(f"By note: {package} `{pattern}`: {reason}.")
    lines += [
        "",
        "## Source files",
        "",
        "| identifier | scene | split | package | file | licence | "
        "copyright | note | clips |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    per_key = {}
    for clip in clips:
        per_key.setdefault(clip["key"], []).append(clip)
    for key in sorted(per_key, key=lambda k: (per_key[k][0]["filename"], k)):
        first = per_key[key][0]
        src = sources[key]
        spec = packages[key[0]]
        cells = [
            first["identifier"],
            first["scene"],
            first["split"],
            f"{spec['package']} {spec['version']}",
            f"`{src['path']}`",
            src["licence"],
            "; ".join(src["copyright"]),
            src["comment"][:300],
            len(per_key[key]),
        ]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines += ["", "## Left out", ""]
    for scene, why in sorted(info["dropped_scenes"].items()):
        lines.append(f"- scene {scene}: {why} (needs 3 groups, 20 clips)")
    for entry in info["skipped_files"]:
        lines.append(f"- {entry}")
    _write_lines(folder / "PROVENANCE.md", lines[0], lines[1:])


def _copy_licences(folder, packages, bases):
    target = folder / "licenses"
    target.mkdir(parents=True, exist_ok=True)
    for short, spec in sorted(packages.items()):
        base = bases[short]
        shutil.copyfile(
            base / spec["copyright"], target / f"{spec['package']}.copyright"
        )
        for note in spec["notes"]:
            inner = (
                f"{spec['container']}!/{note}" if spec["container"] else note
            )
            path = base.joinpath(*Path(inner).parts)
            if path.is_file():
                name = f"{spec['package']}_{sanitize(note)}.txt"
                shutil.copyfile(path, target / name)


def _print_summary(info, elapsed):
    check = info["duplicate_check"]
    print("duplicate check: similarity of every pair of files")
    print(
        f"  threshold {check['threshold']:.2f}; different packages: max "
        f"{check['max_different_packages']}, p99 "
        f"{check['p99_different_packages']}"
    )
    print("  histogram (all pairs | different packages):")
    for a, b in zip(
        check["histogram_all"],
        check["histogram_different_packages"],
        strict=True,
    ):
        if a["n"] or b["n"]:
            print(
                f"   [{a['from']:5.2f}, {a['to']:5.2f})  {a['n']:5d} | "
                f"{b['n']:5d}"
            )
    for name, group in info["groups"].items():
        if len(group["files"]) > 1:
            print(f"  group {name}: {', '.join(group['files'])}")
    print("scenes (clips train/evaluate, groups train/evaluate):")
    for scene, entry in info["scenes"].items():
        print(
            f"  {scene:14s} {entry['train']:3d}/{entry['evaluate']:3d}  "
            f"{len(entry['groups_train'])}/{len(entry['groups_eval'])}"
        )
    for scene, why in info["dropped_scenes"].items():
        print(f"  dropped {scene}: {why}")
    print(f"{info['clips']} clips {info['counts']} in {elapsed:.0f} s")


def main(argv=None):
    """Command line: ``real_scenes.py OUT [options]``."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", help="output folder (TAU 2019 layout)")
    parser.add_argument(
        "--cache", default=None, help="download cache (default: OUT.cache)"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--max_clips_per_source", type=int, default=20)
    parser.add_argument("--train_fraction", type=float, default=0.7)
    args = parser.parse_args(argv)
    try:
        build(
            args.out,
            args.cache,
            args.seconds,
            args.sample_rate,
            args.max_clips_per_source,
            args.train_fraction,
        )
    except (ValueError, FileExistsError, RuntimeError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
