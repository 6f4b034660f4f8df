"""A small synthetic acoustic-scene dataset in the TAU Urban 2019 layout.

The real TAU Urban Acoustic Scenes sets are tens of GB; this generator makes
a set that trains in minutes on a CPU and goes through exactly the same
code (data prep, training, export):

    python -m speechbrain_kd.demo_data OUT_DIR [--clips_per_scene 80]
        [--seconds 3] [--sample_rate 16000] [--channels 2] [--seed 0]
        [--scenes SCENE ...] [--layout tau2019|tau2022]

``--layout tau2022`` (with ``--seconds 1 --channels 1``) writes the TAU
2022 Mobile layout instead: several recording devices, device names in
the file names and ``meta.csv``, and the DCASE 2024 task 1 training
subsets in ``split_setup/``.

Supported: sample rates of 8000 to 48000 Hz (any integer, 44100 and 22050
included), clips of 1 to 10 s (fractions allowed; the length is turned
into whole samples once, by :func:`clip_samples`), 1 to 4 channels and
at least 8 clips per scene (one per location). Other options are refused
before anything is written.

Layout: ``audio/scene-city-location-segment-a.wav``, ``meta.csv``
(``filename  scene_label  identifier  source_label``) and
``evaluation_setup/fold1_{train,evaluate,test}.csv``, tab-separated with
headers; the fold-1 split is by location (``identifier = city-location``).

Each scene mixes a coloured background with sound events (tones, chirps,
chimes, clicks, babble, rumble). The pairs that real systems confuse,
airport / shopping_mall, metro / tram and street_pedestrian /
public_square, share every component but one weak cue with the same
energy in every band in both scenes: chimes of three notes rising or
falling, chirps sweeping up or down, clicks single or in twos. Band
statistics cannot tell a pair apart, a small network learns the cues only
in part (most of its errors fall inside the pairs), and a specialist
trained on its pair has errors to fix. Locations and cities
change gain, tilt and background colour. The channels are microphones
evenly spaced on a line as wide as a head (two channels: the two ears;
three: left, centre, right; mono: one microphone in the middle): each
source reaches them with its own time and level differences, and the
backgrounds of the channels are partly decorrelated, as in a binaural
recording. The same options and seed give byte-identical files.

About 860 lines: the scene recipes (what each synthetic scene sounds like)
are most of it, kept beside the generator that draws them so a reader sees
both; the TAU layout writer is :mod:`speechbrain_kd.tau_layout`.
"""

import argparse
import json
import math
import numbers
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from speechbrain_kd.environment import one_line_faults
from speechbrain_kd.files import file_sha256
from speechbrain_kd.tau_layout import write_clip, write_lines, write_tau_lists

SCENES = [
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
]
CITIES = ["barcelona", "helsinki", "lisbon", "prague"]
INFO_FILE = "demo_info.json"
LAYOUTS = ("tau2019", "tau2022")
# TAU 2022 Mobile: devices a, b, c (real) and s1-s6 (simulated); s4-s6
# record only test clips, so the test split has devices unseen in training.
TRAIN_DEVICES = ["a", "b", "c", "s1", "s2", "s3"]
TEST_ONLY_DEVICES = ["s4", "s5", "s6"]
# The DCASE 2024 task 1 subsets (percent of the train split), nested.
TRAIN_SUBSETS = (5, 10, 25, 50, 100)
FORMAT_VERSION = 2  # 2: the pairs differ only by time-frequency cues

# The supported options (inclusive ranges).
SAMPLE_RATE_RANGE = (8000, 48000)
SECONDS_RANGE = (1.0, 10.0)
CHANNELS_RANGE = (1, 4)
LOCATIONS_PER_CITY = 2
MIN_CLIPS_PER_SCENE = LOCATIONS_PER_CITY * len(CITIES)

# Largest interaural time difference (a source fully to one side), and the
# silent tail every placed event gets: at least MIN_TAIL samples (what the
# generator has always used, so that existing sets keep their bytes) and
# never shorter than the largest delay at the sample rate.
MAX_ITD_SECONDS = 0.0006
MIN_TAIL = 24


def _scene_pair(names, background, shared_events, cues):
    """The recipes of a confusable pair: all shared but the last event.

    Arguments
    ---------
    names : tuple of str
        The two scenes.
    background : tuple
        ``(low Hz, high Hz, tilt dB/octave)``, the same for both.
    shared_events : list of tuple
        ``(kind, rate per second, level, parameters)``, the same for both.
    cues : tuple of tuple
        Each scene's own last event (its cue), in the order of ``names``.

    Returns
    -------
    dict
        ``{scene: {"background": ..., "events": [...]}}``.

    Example
    -------
    >>> pair = _scene_pair(("a", "b"), (40, 1500, -6.0),
    ...                    [("rumble", 1.0, 0.9, {"freq": 100})],
    ...                    (("click", 1.6, 0.1, {}), ("click", 0.8, 0.1, {})))
    >>> [event[1] for event in pair["b"]["events"]]
    [1.0, 0.8]
    """
    return {
        name: {"background": background, "events": [*shared_events, cue]}
        for name, cue in zip(names, cues, strict=True)
    }


# Background: (low Hz, high Hz, tilt dB/octave); events: (kind, rate per
# second, level, parameters). The two scenes of a pair share every entry
# but their cue (see the module docstring), whose level is set so that a
# small baseline confuses the pair and a specialist trained on it fixes part.
SCENE_RECIPES = {
    **_scene_pair(
        ("airport", "shopping_mall"),
        (100, 4000, -3.0),
        [
            ("babble", 1.2, 0.6, {"band": (300, 3000)}),
            ("tone", 0.4, 0.25, {"freq": 600, "harmonics": 3}),
            ("rumble", 0.3, 0.4, {"freq": 70}),
        ],
        (
            ("chime", 1.0, 0.26, {"band": (500, 1500), "rising": True}),
            ("chime", 1.0, 0.26, {"band": (500, 1500), "rising": False}),
        ),
    ),
    **_scene_pair(
        ("metro", "tram"),
        (40, 1500, -6.0),
        [
            ("rumble", 1.0, 0.9, {"freq": 100}),
            ("tone", 0.3, 0.3, {"freq": 900, "harmonics": 2}),
        ],
        (
            ("click", 1.6, 0.1, {"band": (1000, 5000)}),
            ("click", 0.8, 0.1, {"band": (1000, 5000), "repeat": 2}),
        ),
    ),
    **_scene_pair(
        ("street_pedestrian", "public_square"),
        (80, 5000, -4.0),
        [
            ("click", 1.7, 0.5, {"band": (500, 4000)}),
            ("babble", 0.8, 0.5, {"band": (300, 3000)}),
            ("rumble", 0.3, 0.3, {"freq": 60}),
        ],
        (
            ("chirp", 0.8, 0.09, {"band": (2500, 5000), "up": True}),
            ("chirp", 0.8, 0.09, {"band": (2500, 5000), "up": False}),
        ),
    ),
    "bus": {
        "background": (50, 2500, -5.0),
        "events": [
            ("rumble", 1.0, 0.8, {"freq": 55}),
            ("tone", 0.5, 0.4, {"freq": 1400, "harmonics": 1}),
            ("babble", 0.4, 0.3, {"band": (300, 2500)}),
        ],
    },
    "metro_station": {
        "background": (60, 3000, -4.0),
        "events": [
            ("babble", 0.8, 0.5, {"band": (300, 3000)}),
            ("chirp", 0.4, 0.4, {"band": (400, 1200)}),
            ("rumble", 0.4, 0.6, {"freq": 100}),
        ],
    },
    "park": {
        "background": (200, 7000, -2.0),
        "events": [
            ("chirp", 1.5, 0.5, {"band": (3000, 7000)}),
            ("babble", 0.2, 0.2, {"band": (300, 3000)}),
        ],
    },
    "street_traffic": {
        "background": (30, 3000, -7.0),
        "events": [
            ("rumble", 1.5, 0.9, {"freq": 45}),
            ("tone", 0.2, 0.5, {"freq": 440, "harmonics": 5}),
        ],
    },
}


def _coloured_noise(rng, n, rate, low, high, tilt_db):
    """White noise shaped to a band with a spectral tilt (dB / octave)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    octaves = np.log2(np.maximum(freqs, 1.0) / max(low, 1.0))
    envelope = 10 ** (tilt_db * octaves / 20)
    envelope *= 1 / (1 + (low / np.maximum(freqs, 1.0)) ** 4)
    envelope *= 1 / (1 + (freqs / high) ** 4)
    noise = np.fft.irfft(spectrum * envelope, n)
    return noise / (noise.std() + 1e-9)


def _event(rng, kind, rate, params, jitter):
    """One sound event: a short mono waveform."""
    duration = rng.uniform(0.15, 0.6)
    n = int(duration * rate)
    t = np.arange(n) / rate
    window = np.hanning(n)
    if kind == "tone":
        f0 = params["freq"] * jitter
        wave = sum(
            np.sin(2 * np.pi * f0 * (h + 1) * t) / (h + 1)
            for h in range(params["harmonics"])
        )
    elif kind == "chirp":
        lo, hi = params["band"]
        f_start, f_end = rng.uniform(lo, hi, size=2)
        if "up" in params:
            # A pair cue: a sweep of at least a third of the band, up or
            # down, so that both scenes cover the same band equally.
            low, high = sorted((f_start, f_end))
            high = max(high, low + (hi - lo) / 3)
            f_start, f_end = (low, high) if params["up"] else (high, low)
        phase = 2 * np.pi * (f_start * t + (f_end - f_start) * t**2 / 2 / t[-1])
        wave = np.sin(phase)
    elif kind == "click":
        n = int(0.03 * rate)
        window = np.exp(-np.arange(n) / (0.004 * rate))
        lo, hi = params["band"]
        wave = _coloured_noise(rng, n, rate, lo, hi, 0.0)
        if params.get("repeat", 1) > 1:
            # Clicks in quick succession (wheels over a rail joint).
            gap = int(rng.uniform(0.06, 0.1) * rate)
            train = np.zeros(gap * (params["repeat"] - 1) + n)
            for k in range(params["repeat"]):
                train[k * gap : k * gap + n] += wave * window
            wave, window = train, 1.0
    elif kind == "chime":
        # Three notes of a chime, rising or falling.
        note = int(0.08 * rate)
        lo, hi = params["band"]
        step = rng.uniform(1.25, 1.4)
        freqs = rng.uniform(lo, hi / step**2) * step ** np.arange(3)
        if not params["rising"]:
            freqs = freqs[::-1]
        t = np.arange(note) / rate
        wave = np.concatenate([np.sin(2 * np.pi * f * t) for f in freqs])
        window = np.tile(np.hanning(note), 3)
    elif kind == "babble":
        lo, hi = params["band"]
        carrier = _coloured_noise(rng, n, rate, lo, hi, -3.0)
        syllables = 1 + np.sin(2 * np.pi * rng.uniform(3, 6) * t)
        wave = carrier * syllables
    elif kind == "rumble":
        duration = rng.uniform(0.8, 2.0)
        n = int(duration * rate)
        t = np.arange(n) / rate
        window = np.hanning(n)
        f0 = params["freq"] * jitter
        engine = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
        wave = engine + 0.5 * _coloured_noise(rng, n, rate, 20, 4 * f0, -6)
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    return wave * window / (np.abs(wave).max() + 1e-9)


def _delay_samples(lag, rate):
    """Delay in samples of a channel ``lag`` (0 to 1) of the widest ITD."""
    return int(round(lag * MAX_ITD_SECONDS * rate))


def _channel_lags(azimuth, channels):
    """How far (0 to 1) each channel is behind the one nearest the source.

    The microphones sit evenly on a line from -1 (left) to 1 (right); mono
    is one microphone at 0. A source at ``azimuth`` (-1 to 1) reaches the
    nearest one first; a channel's lag is half its distance from that one
    along the source direction, so two channels get ``|azimuth|`` and 0.
    """
    if channels == 1:
        return [0.0]
    positions = np.linspace(-1.0, 1.0, channels)
    nearness = azimuth * positions
    return [float((nearness.max() - p) / 2) for p in nearness]


def _place(rng, channels, mono, rate):
    """Give a mono source its time and level difference on each channel.

    Returns ``[len(mono) + tail, channels]``: the tail holds the largest
    delay, so every channel gets the whole event.
    """
    tail = max(MIN_TAIL, _delay_samples(1.0, rate))
    out = np.zeros((len(mono) + tail, channels))
    azimuth = rng.uniform(-1, 1)
    for ch, lag in enumerate(_channel_lags(azimuth, channels)):
        shift = _delay_samples(lag, rate)
        out[shift : shift + len(mono), ch] = mono * 10 ** (-6 * lag / 20)
    return out


def clip_samples(seconds, rate):
    """The length in samples of a clip of ``seconds`` at ``rate`` Hz.

    The only place where a clip length turns into samples: the whole
    samples in ``seconds`` (rounded down), counted on the decimal value as
    written, since in floats ``2.3 * 44100`` is ``101429.99999999999``.

    Arguments
    ---------
    seconds : float
    rate : int

    Returns
    -------
    int

    Example
    -------
    >>> clip_samples(3.0, 16000), clip_samples(2.3, 44100)
    (48000, 101430)
    >>> clip_samples(1.7, 11025)  # 18742.5
    18742
    """
    return math.floor(Fraction(str(float(seconds))) * int(rate))


def synthesize_clip(scene, location_style, rng, seconds, rate, channels):
    """Synthesize one clip of ``scene`` as ``[samples, channels]``.

    Arguments
    ---------
    scene : str
        One of :data:`SCENES`.
    location_style : dict
        ``gain``, ``tilt`` (dB/octave) and ``jitter`` (event frequency
        factor) of the recording location.
    rng : numpy.random.Generator
    seconds : float
        1 to 10; the clip has ``clip_samples(seconds, rate)`` samples.
    rate : int
        8000 to 48000 Hz.
    channels : int
        1 to 4.

    Returns
    -------
    numpy.ndarray
        float32, peak below 1.

    Raises
    ------
    ValueError
        When ``seconds``, ``rate`` or ``channels`` is out of range.

    Example
    -------
    >>> style = {"gain": 0.5, "tilt": 0.0, "jitter": 1.0}
    >>> clip = synthesize_clip(
    ...     "park", style, np.random.default_rng(0), 1.5, 44100, 3
    ... )
    >>> clip.shape, clip.dtype, bool(abs(clip).max() < 1)
    ((66150, 3), dtype('float32'), True)
    """
    if scene not in SCENE_RECIPES:
        raise ValueError(f"scene={scene!r} is not one of {SCENES}")
    seconds = _check_seconds(seconds)
    rate = _check_integer("sample_rate", rate, *SAMPLE_RATE_RANGE, "Hz")
    channels = _check_integer("channels", channels, *CHANNELS_RANGE)
    recipe = SCENE_RECIPES[scene]
    n = clip_samples(seconds, rate)
    low, high, tilt = recipe["background"]
    high = min(high, 0.45 * rate)
    tilt += location_style["tilt"]
    common = _coloured_noise(rng, n, rate, low, high, tilt)
    mix = np.zeros((n, channels))
    for ch in range(channels):
        own = _coloured_noise(rng, n, rate, low, high, tilt)
        mix[:, ch] = 0.3 * (0.7 * common + 0.3 * own)
    for kind, per_second, level, params in recipe["events"]:
        count = rng.poisson(per_second * seconds)
        for _ in range(count):
            event = _event(rng, kind, rate, params, location_style["jitter"])
            placed = _place(rng, channels, event, rate)[:n]
            start = rng.integers(0, max(1, n - len(placed) // 2))
            stop = min(n, start + len(placed))
            mix[start:stop] += (
                level * rng.uniform(0.6, 1.2) * placed[: stop - start]
            )
    mix *= location_style["gain"] / (np.abs(mix).max() + 1e-9)
    return mix.astype(np.float32)


def _check_integer(name, value, low, high=None, unit=""):
    """``value`` as an int, or a ValueError naming the option and range."""
    if high is None:
        allowed = f"an integer >= {low}"
    else:
        allowed = f"an integer from {low} to {high}"
    if unit:
        allowed += f" {unit}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name}={value!r} is not an integer; allowed: {allowed}"
        )
    if value < low or (high is not None and value > high):
        raise ValueError(
            f"{name}={value!r} is out of range; allowed: {allowed}"
        )
    return int(value)


def _check_seconds(seconds):
    """``seconds`` as a float, or a ValueError naming the range."""
    low, high = SECONDS_RANGE
    allowed = f"a number of seconds from {low:g} to {high:g}"
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise ValueError(
            f"seconds={seconds!r} is not a number; allowed: {allowed}"
        )
    if not low <= seconds <= high:  # NaN included
        raise ValueError(
            f"seconds={seconds!r} is out of range; allowed: {allowed}"
        )
    return float(seconds)


def check_options(
    clips_per_scene=80,
    seconds=3.0,
    sample_rate=16000,
    channels=2,
    seed=0,
    scenes=None,
    layout="tau2019",
):
    """Check the options of :func:`generate_demo_dataset`; normalise them.

    Arguments
    ---------
    clips_per_scene : int
        At least 8 (one per location).
    seconds : float
        1 to 10.
    sample_rate : int
        8000 to 48000 Hz.
    channels : int
        1 to 4.
    seed : int
        Non-negative.
    scenes : list of str, optional
        A subset of :data:`SCENES` (kept in that order); default all.
    layout : str
        ``tau2019`` (one device) or ``tau2022`` (see
        :func:`generate_demo_dataset`).

    Returns
    -------
    dict
        The options as stored in the set's ``demo_info.json``.

    Raises
    ------
    ValueError
        Naming the first bad option, its value and what is allowed.

    Example
    -------
    >>> check_options(8, 2.5, 22050, 1)["seconds"]
    2.5
    >>> check_options(sample_rate=96000)
    Traceback (most recent call last):
    ...
    ValueError: sample_rate=96000 is out of range; allowed: an integer from ...
    """
    options = {
        "format_version": FORMAT_VERSION,
        "clips_per_scene": _check_integer(
            "clips_per_scene",
            clips_per_scene,
            MIN_CLIPS_PER_SCENE,
            unit=f"(at least {MIN_CLIPS_PER_SCENE} are needed: one per "
            "location)",
        ),
        "seconds": _check_seconds(seconds),
        "sample_rate": _check_integer(
            "sample_rate", sample_rate, *SAMPLE_RATE_RANGE, "Hz"
        ),
        "channels": _check_integer("channels", channels, *CHANNELS_RANGE),
        "seed": _check_integer("seed", seed, 0),
    }
    if scenes is not None:
        chosen = [scenes] if isinstance(scenes, str) else list(scenes)
        unknown = [s for s in chosen if s not in SCENES]
        if not chosen or unknown:
            raise ValueError(
                f"scenes={scenes!r}: allowed: one or more of {SCENES}"
            )
        if set(chosen) != set(SCENES):
            # Only a subset is recorded, so full sets keep their info file.
            options["scenes"] = [s for s in SCENES if s in chosen]
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: allowed: one of {LAYOUTS}")
    if layout != "tau2019":  # recorded only when not the default
        options["layout"] = layout
    return options


def _digests(folder):
    """``{relative path: SHA-256}`` of every file of a demo set but its info."""
    return {
        str(path.relative_to(folder)): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != INFO_FILE
    }


def _is_complete(folder, options):
    """Whether ``folder`` is the demo set of ``options``, as it was written.

    Raises FileExistsError when it was, but its files changed since.
    """
    info = folder / INFO_FILE
    if not info.is_file():
        return False
    info = json.loads(info.read_text())
    if info.get("options") != options:
        return False
    if "files" not in info:  # written before the digests were recorded
        names = (folder / "meta.csv").read_text().splitlines()[1:]
        return all((folder / line.split("\t")[0]).is_file() for line in names)
    now = _digests(folder)
    changed = sorted(
        name
        for name in set(now) | set(info["files"])
        if now.get(name) != info["files"].get(name)
    )
    if changed:
        shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
        raise FileExistsError(
            f"{folder} is a demo set whose files changed since it was made "
            f"({len(changed)} file(s) edited, added or removed: {shown}): "
            "delete it to make it again, or choose another folder"
        )
    return True


def generate_demo_dataset(
    out_dir,
    clips_per_scene=80,
    seconds=3.0,
    sample_rate=16000,
    channels=2,
    seed=0,
    scenes=None,
    layout="tau2019",
):
    """Write the demo dataset to ``out_dir`` (or reuse an identical one).

    Each scene gets 8 locations (two per city), 6 for fold-1 train and 2
    for evaluate, so no location is on both sides; ``clips_per_scene``
    segments are spread over them. The options are checked (see
    :func:`check_options`) before anything is written.

    Arguments
    ---------
    out_dir : str or pathlib.Path
    clips_per_scene : int
        At least 8 (one per location).
    seconds : float
        1 to 10 (fractions allowed).
    sample_rate : int
        8000 to 48000 Hz.
    channels : int
        1 to 4.
    seed : int
        Non-negative.
    scenes : list of str, optional
        Only these of :data:`SCENES` (a smaller set for quick checks);
        default all.
    layout : str
        ``tau2019``: one device (``a``), ``scene-city-location-segment-
        a.wav``. ``tau2022``: the TAU Urban Acoustic Scenes 2022 Mobile
        layout: every clip recorded by one of the devices
        :data:`TRAIN_DEVICES` (half by ``a``), each with its own frequency
        response, test clips also by :data:`TEST_ONLY_DEVICES`; names
        ``scene-city-location-segment-0-device.wav``; and the DCASE 2024
        task 1 subsets ``split_setup/split{5,10,25,50,100}.csv`` (nested,
        every scene in each). Use it with ``seconds=1.0, channels=1``.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ValueError
        When an option is out of range (nothing is written).
    FileExistsError
        When ``out_dir`` holds anything else (another demo set included),
        or a demo set whose files were changed since it was written.

    Example
    -------
    >>> folder = getfixture("tmpdir") + "/demo"
    >>> path = generate_demo_dataset(folder, 8, 1.0, 8000)
    >>> sorted(p.name for p in path.iterdir())
    ['audio', 'demo_info.json', 'evaluation_setup', 'meta.csv']
    >>> len(list((path / "audio").glob("*.wav")))
    80
    >>> generate_demo_dataset(folder, 8, 1.0, 8000) == path  # reused
    True
    >>> small = generate_demo_dataset(
    ...     getfixture("tmpdir") + "/small", 8, 1.0, 8000, scenes=["park"]
    ... )
    >>> len(list((small / "audio").glob("park-*.wav")))
    8
    """
    out_dir = Path(out_dir)
    options = check_options(
        clips_per_scene, seconds, sample_rate, channels, seed, scenes, layout
    )
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        if _is_complete(out_dir, options):
            return out_dir
        raise FileExistsError(
            f"{out_dir} is not empty and is not a demo set made with "
            f"{options}: choose another folder or delete it"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".demo-"))
    try:
        _write(tmp, options)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write(folder, options):
    rng = np.random.default_rng(options["seed"])
    rate, seconds = options["sample_rate"], options["seconds"]
    scenes = options.get("scenes", SCENES)
    city_style = {
        city: {
            "tilt": rng.uniform(-1.5, 1.5),
            "jitter": rng.uniform(0.97, 1.03),
        }
        for city in CITIES
    }
    mobile = options.get("layout") == "tau2022"
    # Devices come from a generator of their own, so that a TAU 2019 set
    # keeps the bytes it always had.
    device_rng = np.random.default_rng([options["seed"], 2022])
    responses = {
        device: _device_response(device_rng, rate)
        for device in (TRAIN_DEVICES + TEST_ONLY_DEVICES if mobile else [])
    }
    clips = []
    next_location = dict.fromkeys(CITIES, 0)
    for scene in scenes:
        locations = []
        for city in CITIES:
            for _ in range(LOCATIONS_PER_CITY):
                locations.append((city, next_location[city]))
                next_location[city] += 1
        order = rng.permutation(len(locations))
        evaluate_locations = {locations[i] for i in order[:2]}
        segments = dict.fromkeys(locations, 0)
        for k in range(options["clips_per_scene"]):
            city, location = locations[k % len(locations)]
            style = {
                "gain": rng.uniform(0.2, 0.8),
                "tilt": city_style[city]["tilt"] + rng.uniform(-0.3, 0.3),
                "jitter": city_style[city]["jitter"] * rng.uniform(0.99, 1.01),
            }
            clip = synthesize_clip(
                scene, style, rng, seconds, rate, options["channels"]
            )
            segment = segments[(city, location)]
            segments[(city, location)] += 1
            testing = (city, location) in evaluate_locations
            device, stem = "a", f"{scene}-{city}-{location}-{segment}"
            if mobile:
                device = _pick_device(device_rng, testing)
                clip = _record_with(clip, responses[device])
                stem += "-0"
            name = f"audio/{stem}-{device}.wav"
            write_clip(folder / name, clip, rate)
            clips.append(
                {
                    "filename": name,
                    "scene": scene,
                    "identifier": f"{city}-{location}",
                    "split": "evaluate" if testing else "train",
                    "device": device,
                }
            )
    write_tau_lists(folder, clips)
    if mobile:
        train = [c for c in clips if c["split"] == "train"]
        _write_subsets(folder / "split_setup", train, device_rng)
    info = {
        "description": "speechbrain-kd synthetic demo set, "
        + ("TAU 2022 Mobile layout" if mobile else "TAU 2019 layout"),
        "options": options,
        "scenes": scenes,
        "clips": len(clips),
        # A later call reuses the set only while every file is as written.
        "files": _digests(folder),
    }
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))


def _device_response(rng, rate):
    """A device's gain per frequency bin: a smooth random EQ and band edges.

    ``[rate // 2 + 1]`` gains on a 1-Hz grid, looked up per clip.
    """
    freqs = np.arange(rate // 2 + 1, dtype=np.float64)
    octaves = np.log2(np.maximum(freqs, 1.0) / 1000.0)
    gain_db = rng.uniform(-2.0, 2.0) * octaves  # a tilt
    for _ in range(3):  # resonances and dips
        centre = np.log2(rng.uniform(200, 0.4 * rate) / 1000.0)
        gain_db += rng.uniform(-6, 6) * np.exp(-((octaves - centre) ** 2) * 4)
    low, high = rng.uniform(60, 250), rng.uniform(0.3, 0.48) * rate
    edges = 1 / (1 + (low / np.maximum(freqs, 1.0)) ** 4)
    edges /= 1 + (freqs / high) ** 8
    return 10 ** (gain_db / 20) * edges


def _pick_device(rng, testing):
    """Half the training clips by device ``a``; test clips by any device."""
    if testing:
        return str(rng.choice(TRAIN_DEVICES + TEST_ONLY_DEVICES))
    if rng.random() < 0.5:
        return "a"
    return str(rng.choice(TRAIN_DEVICES[1:]))


def _record_with(clip, response):
    """``clip`` as the device with ``response`` would record it."""
    n = clip.shape[0]
    spectrum = np.fft.rfft(clip.astype(np.float64), axis=0)
    bins = np.fft.rfftfreq(n, 1.0 / (2 * (len(response) - 1)))
    gains = np.interp(bins, np.arange(len(response)), response)
    out = np.fft.irfft(spectrum * gains[:, None], n, axis=0)
    peak = np.abs(clip).max() / (np.abs(out).max() + 1e-9)
    return (out * peak).astype(np.float32)


def _write_subsets(folder, train, rng):
    """Nested subsets of the train clips, each scene in each (DCASE 2024)."""
    by_scene = {}
    for clip in train:
        by_scene.setdefault(clip["scene"], []).append(
            f"{clip['filename']}\t{clip['scene']}"
        )
    order = {
        scene: rng.permutation(len(lines)) for scene, lines in by_scene.items()
    }
    for percent in TRAIN_SUBSETS:
        chosen = []
        for scene, lines in by_scene.items():
            keep = max(1, math.ceil(len(lines) * percent / 100))
            chosen += [lines[i] for i in sorted(order[scene][:keep])]
        write_lines(
            folder / f"split{percent}.csv", "filename\tscene_label", chosen
        )


def _number(text):
    """An int or float from the command line (the range is checked later)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a number")


def main(argv=None):
    """Command-line entry point: ``python -m speechbrain_kd.demo_data``.

    Bad options end it as argparse does: a message on stderr and exit
    status 2, before anything is written.

    ``argv``: the command line's words (default ``sys.argv[1:]``).

    Example
    -------
    >>> folder = str(getfixture("tmpdir") / "cli")
    >>> main([folder, "--clips_per_scene", "8", "--seconds", "1",
    ...       "--sample_rate", "8000", "--scenes", "bus", "tram"])
    demo dataset in .../cli
    >>> main([folder + "2", "--channels", "5"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--clips_per_scene", type=_number, default=80)
    parser.add_argument("--seconds", type=_number, default=3.0)
    parser.add_argument("--sample_rate", type=_number, default=16000)
    parser.add_argument("--channels", type=_number, default=2)
    parser.add_argument("--seed", type=_number, default=0)
    parser.add_argument(
        "--scenes", nargs="+", choices=SCENES, default=None, metavar="SCENE"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="tau2019",
        help="tau2022: several devices and the DCASE 2024 subset files",
    )
    args = parser.parse_args(argv)
    options = (
        args.clips_per_scene,
        args.seconds,
        args.sample_rate,
        args.channels,
        args.seed,
        args.scenes,
        args.layout,
    )
    try:
        check_options(*options)
    except ValueError as error:
        parser.error(str(error))
    try:
        with one_line_faults(args.out_dir, "output folder"):
            path = generate_demo_dataset(args.out_dir, *options)
    except FileExistsError as error:
        parser.error(str(error))
    print(f"demo dataset in {path}")


if __name__ == "__main__":
    main()
