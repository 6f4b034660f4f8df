"""Demo data: the TAU layout at every supported rate, length and channel
count, split by location, deterministic by seed, bad options refused."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_kd import demo_data
from speechbrain_kd.demo_data import (
    SCENES,
    check_options,
    generate_demo_dataset,
    main,
)
from speechbrain_kd.reference import logmel_statistics

SMALL = {"clips_per_scene": 8, "seconds": 1.0, "sample_rate": 8000}
HEADERS = {
    "meta.csv": ["filename", "scene_label", "identifier", "source_label"],
    "evaluation_setup/fold1_train.csv": ["filename", "scene_label"],
    "evaluation_setup/fold1_evaluate.csv": ["filename", "scene_label"],
    "evaluation_setup/fold1_test.csv": ["filename"],
}

# Every rate, length and channel count at least once, not the product.
# The length in samples is written out: rates that do not divide evenly,
# fractions of a second whose float product falls just below a whole
# number (2.3 * 44100) or on a half (1.7 * 11025), rates above 40 kHz
# (the widest interaural delay there is longer than 24 samples), and the
# two commands that used to crash (48 kHz 10 s; 44.1 kHz).
GRID = [
    # sample_rate, seconds, channels, scenes (None: all ten), frames
    (8000, 1.0, 2, None, 8000),
    (11025, 1.7, 1, ["street_traffic"], 18742),
    (22050, 2.5, 3, ["park", "tram"], 55125),
    (44100, 2.3, 4, ["public_square", "street_traffic"], 101430),
    (48000, 10.0, 2, ["street_traffic"], 480000),
]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def all_files(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def check_layout(data, scenes, clips_per_scene):
    assert sorted(p.name for p in data.iterdir()) == [
        "audio",
        "demo_info.json",
        "evaluation_setup",
        "meta.csv",
    ]
    tables = {}
    for name, header in HEADERS.items():
        lines = rows(data / name)
        assert lines[0] == header, name
        assert all(len(line) == len(header) for line in lines[1:]), name
        tables[name] = lines[1:]
    meta = tables["meta.csv"]
    train = tables["evaluation_setup/fold1_train.csv"]
    evaluate = tables["evaluation_setup/fold1_evaluate.csv"]
    test = tables["evaluation_setup/fold1_test.csv"]
    assert len(meta) == clips_per_scene * len(scenes)
    assert {r[1] for r in meta} == set(scenes)
    wavs = {f"audio/{p.name}" for p in (data / "audio").iterdir()}
    assert wavs == {r[0] for r in meta}
    for table in (train, evaluate, test):
        assert all((data / r[0]).is_file() for r in table)
    assert sorted(train + evaluate) == sorted(r[:2] for r in meta)
    assert [r[0] for r in test] == [r[0] for r in evaluate]
    identifier = {}
    for name, scene, ident, source in meta:
        s, city, location, segment, device = name[6:-4].split("-")
        assert (s, device, source) == (scene, "a", "a")
        assert ident == f"{city}-{location}" and segment.isdigit()
        identifier[name] = ident
    for scene in scenes:
        train_places = {identifier[r[0]] for r in train if r[1] == scene}
        eval_places = {identifier[r[0]] for r in evaluate if r[1] == scene}
        assert (len(train_places), len(eval_places)) == (6, 2), scene
        assert train_places.isdisjoint(eval_places)
    return sorted(wavs)


@pytest.mark.parametrize(
    "sample_rate, seconds, channels, scenes, frames",
    GRID,
    ids=[f"{g[0]}Hz-{g[1]}s-{g[2]}ch" for g in GRID],
)
def test_grid_layout_wav_format_and_determinism(
    tmp_path, sample_rate, seconds, channels, scenes, frames
):
    options = {
        "clips_per_scene": 8,
        "seconds": seconds,
        "sample_rate": sample_rate,
        "channels": channels,
        "scenes": scenes,
    }
    a = generate_demo_dataset(tmp_path / "a", seed=3, **options)
    wavs = check_layout(a, scenes or SCENES, 8)
    for name in wavs:
        info = soundfile.info(a / name)
        assert (info.samplerate, info.channels, info.frames) == (
            sample_rate,
            channels,
            frames,
        ), name
        assert info.subtype == "PCM_16"
    audio, _ = soundfile.read(a / wavs[0], always_2d=True)
    assert 0.05 < np.abs(audio).max() < 1
    for ch in range(1, channels):  # partly decorrelated, not copies
        assert not np.array_equal(audio[:, 0], audio[:, ch])

    b = generate_demo_dataset(tmp_path / "b", seed=3, **options)
    assert all_files(a) == all_files(b)
    c = generate_demo_dataset(tmp_path / "c", seed=4, **options)
    first = (a / wavs[0]).read_bytes()
    assert (c / wavs[0]).read_bytes() != first


def test_channels_delay_and_level_like_a_line_of_microphones():
    class Side:  # a source fully on one side (azimuth -1 or 1)
        def __init__(self, azimuth):
            self.azimuth = azimuth

        def uniform(self, low, high):
            return self.azimuth

    mono = np.hanning(65)
    for rate in (8000, 11025, 22050, 40000, 40834, 44100, 48000):
        widest = round(0.0006 * rate)
        for channels in (1, 2, 3, 4):
            for azimuth in (-1.0, 1.0):
                out = demo_data._place(Side(azimuth), channels, mono, rate)
                assert out.shape == (65 + max(24, widest), channels)
                starts = [
                    int(np.flatnonzero(out[:, c])[0]) for c in range(channels)
                ]
                peaks = out.max(axis=0)
                if channels == 1:  # one microphone in the middle
                    assert starts == [1] and np.isclose(peaks[0], 1)
                    continue
                near, far = (-1, 0) if azimuth > 0 else (0, -1)
                assert starts[near] == 1 and np.isclose(peaks[near], 1)
                assert starts[far] == widest + 1
                assert np.isclose(peaks[far], 10 ** (-6 / 20))
                order = starts if azimuth < 0 else starts[::-1]
                assert order == sorted(order)  # delays grow away
                for c in range(channels):  # every channel the whole event
                    s = starts[c] - 1
                    assert np.allclose(out[s : s + 65, c], mono * peaks[c])


def test_reuses_identical_set_refuses_others(tmp_path):
    folder = generate_demo_dataset(tmp_path / "d", **SMALL)
    stamp = (folder / "meta.csv").stat().st_mtime_ns
    generate_demo_dataset(folder, **SMALL)
    assert (folder / "meta.csv").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="not a demo set made with"):
        generate_demo_dataset(folder, **{**SMALL, "seed": 1})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_demo_dataset(tmp_path / "other", **SMALL)
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("edit", ["meta.csv", "audio", "added"])
def test_edited_set_is_refused_not_reused(tmp_path, capsys, edit):
    folder = generate_demo_dataset(tmp_path / "d", **SMALL)
    if edit == "meta.csv":
        meta = folder / "meta.csv"
        meta.write_text("".join(meta.read_text().splitlines(True)[:-1]))
        changed = "meta.csv"
    elif edit == "audio":
        wav = sorted((folder / "audio").iterdir())[3]
        data, rate = soundfile.read(wav)
        soundfile.write(wav, data[::-1], rate, subtype="PCM_16")
        changed = f"audio/{wav.name}"
    else:
        (folder / "evaluation_setup" / "fold2_train.csv").write_text("x\n")
        changed = "evaluation_setup/fold2_train.csv"
    with pytest.raises(
        FileExistsError,
        match=f"demo set whose files changed since it was made \\(1 file\\(s\\)"
        f" edited, added or removed: {changed}\\): delete it",
    ):
        generate_demo_dataset(folder, **SMALL)
    with pytest.raises(SystemExit) as stop:  # the command line: exit 2
        main([str(folder), *(f"--{k}={v}" for k, v in SMALL.items())])
    assert stop.value.code == 2
    assert "whose files changed" in capsys.readouterr().err


BAD = [
    ("sample_rate", 7999, "out of range", "8000 to 48000"),
    ("sample_rate", 48001, "out of range", "8000 to 48000"),
    ("sample_rate", 44100.5, "not an integer", "8000 to 48000"),
    ("sample_rate", 16000.0, "not an integer", "8000 to 48000"),
    ("seconds", 0.5, "out of range", "1 to 10"),
    ("seconds", 10.01, "out of range", "1 to 10"),
    ("seconds", math.nan, "out of range", "1 to 10"),
    ("channels", 0, "out of range", "1 to 4"),
    ("channels", 5, "out of range", "1 to 4"),
    ("clips_per_scene", 0, "out of range", "at least 8"),
    ("clips_per_scene", 7, "out of range", "at least 8"),
    ("seed", -1, "out of range", ">= 0"),
]


@pytest.mark.parametrize(
    "option, value, problem, allowed",
    BAD,
    ids=[f"{b[0]}={b[1]}" for b in BAD],
)
def test_out_of_range_option_refused_before_writing(
    tmp_path, option, value, problem, allowed
):
    out = tmp_path / "d"
    with pytest.raises(ValueError) as error:
        generate_demo_dataset(out, **{**SMALL, option: value})
    message = str(error.value)
    assert message.startswith(f"{option}={value!r} is {problem}")
    assert allowed in message
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp dir


def test_unknown_scene_refused():
    with pytest.raises(ValueError, match="scenes=.*'beach'"):
        check_options(scenes=["park", "beach"])
    with pytest.raises(ValueError, match="scenes=\\[\\]"):
        check_options(scenes=[])
    assert "scenes" not in check_options(scenes=list(reversed(SCENES)))
    assert check_options(scenes=["tram", "bus"])["scenes"] == ["bus", "tram"]


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--sample_rate", "44100.5"),
        ("--sample_rate", "96000"),
        ("--seconds", "11"),
        ("--channels", "5"),
        ("--clips_per_scene", "7"),
    ],
)
def test_command_line_refuses_like_argparse(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "d"), flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {flag[2:]}={value}" in err and "allowed" in err
    assert list(tmp_path.iterdir()) == []


def test_command_line_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "speechbrain_kd.demo_data", str(tmp_path / "d")]
        + ["--sample_rate", "7999"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "sample_rate=7999 is out of range" in result.stderr
    assert "8000 to 48000" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_tau2022_layout_devices_names_and_nested_subsets(tmp_path):
    options = {"clips_per_scene": 24, "seconds": 1.0, "sample_rate": 8000}
    mobile = generate_demo_dataset(
        tmp_path / "m", channels=1, layout="tau2022", **options
    )
    meta = rows(mobile / "meta.csv")[1:]
    train = {
        r[0] for r in rows(mobile / "evaluation_setup/fold1_train.csv")[1:]
    }
    test = {
        r[0] for r in rows(mobile / "evaluation_setup/fold1_evaluate.csv")[1:]
    }
    for name, scene, identifier, device in meta:
        city, location = identifier.split("-")
        # TAU 2022: scene-city-location-segment-subsegment-device.wav
        assert name.startswith(f"audio/{scene}-{city}-{location}-")
        assert name.endswith(f"-0-{device}.wav")
    devices = {r[0]: r[3] for r in meta}
    train_devices = {devices[n] for n in train}
    test_devices = {devices[n] for n in test}
    assert train_devices == set(demo_data.TRAIN_DEVICES)
    assert set(demo_data.TEST_ONLY_DEVICES) <= test_devices
    assert sum(devices[n] == "a" for n in train) > len(train) / 3
    # Each device has its own frequency response: the same clip (the
    # scenes are drawn as in the TAU 2019 layout) filtered per device.
    plain = generate_demo_dataset(tmp_path / "p", channels=1, **options)
    ratios = {}
    for name, _, _, device in meta:
        same = name.rsplit("-", 2)[0] + "-a.wav"
        bands = [
            np.array_split(np.abs(np.fft.rfft(a)) ** 2, 8)
            for a in (
                soundfile.read(f)[0] for f in (mobile / name, plain / same)
            )
        ]
        db = [
            10 * np.log10(x.sum() / y.sum())
            for x, y in zip(*bands, strict=True)
        ]
        ratios.setdefault(device, []).append(np.array(db) - np.mean(db))
    response = {d: np.median(r, axis=0) for d, r in ratios.items()}
    assert np.abs(response["a"] - response["b"]).max() > 3  # dB
    assert np.abs(response["s1"] - response["s4"]).max() > 3
    # Subsets: nested, of the train split only, every scene in each.
    previous = set()
    for percent in demo_data.TRAIN_SUBSETS:
        listed = rows(mobile / f"split_setup/split{percent}.csv")
        assert listed[0] == ["filename", "scene_label"]
        names = {r[0] for r in listed[1:]}
        assert previous <= names <= train
        assert {r[1] for r in listed[1:]} == set(SCENES)
        assert len(names) >= percent / 100 * len(train)
        previous = names
    assert previous == train
    # The TAU 2019 layout is untouched by the device generator.
    again = generate_demo_dataset(tmp_path / "q", channels=1, **options)
    assert all_files(plain) == all_files(again)
    assert not (plain / "split_setup").exists()
    with pytest.raises(ValueError, match="layout='tau2023'"):
        check_options(layout="tau2023")


# The confusable pairs differ only by cues a time-frequency model can see.
PAIRS = [
    ("airport", "shopping_mall"),
    ("metro", "tram"),
    ("street_pedestrian", "public_square"),
]


def peak_frequency(wave, rate):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), 8 * len(wave)))
    return np.fft.rfftfreq(8 * len(wave), 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("rising", [True, False])
def test_chime_has_three_notes_rising_or_falling(rising):
    rng = np.random.default_rng(0)
    params = {"band": (500, 1500), "rising": rising}
    for _ in range(10):
        wave = demo_data._event(rng, "chime", 16000, params, 1.0)
        notes = [peak_frequency(n, 16000) for n in np.split(wave, 3)]
        steps = np.diff(notes) if rising else -np.diff(notes)
        assert len(wave) == 3 * 1280 and (steps > 100).all(), notes
        assert 480 < min(notes) and max(notes) < 1520, notes


@pytest.mark.parametrize("up", [True, False])
def test_chirp_sweeps_up_or_down_over_a_third_of_its_band(up):
    rng = np.random.default_rng(1)
    for _ in range(10):
        wave = demo_data._event(
            rng, "chirp", 16000, {"band": (2500, 5000), "up": up}, 1.0
        )
        quarter = len(wave) // 4
        start = peak_frequency(wave[:quarter], 16000)
        end = peak_frequency(wave[-quarter:], 16000)
        # The peaks of the first and last quarters lie inside the sweep.
        sweep = (end - start) if up else (start - end)
        assert sweep > 2500 / 3 / 2, (start, end)


def test_clicks_come_single_or_in_twos():
    rng = np.random.default_rng(2)
    rate, click = 16000, int(0.03 * 16000)
    for _ in range(10):
        single = demo_data._event(
            rng, "click", rate, {"band": (1000, 5000)}, 1.0
        )
        double = demo_data._event(
            rng, "click", rate, {"band": (1000, 5000), "repeat": 2}, 1.0
        )
        gap = len(double) - click
        assert len(single) == click
        assert 0.06 * rate <= gap <= 0.1 * rate
        assert not double[click:gap].any()  # silence between the clicks
        assert np.abs(double[:click]).max() > 0.3
        assert np.abs(double[gap:]).max() > 0.3


def band_statistics(scene, clips, rng):
    """The linear reference's features, averaged over ``clips`` clips."""
    style = {"gain": 0.5, "tilt": 0.0, "jitter": 1.0}
    return np.mean(
        [
            logmel_statistics(
                torch.from_numpy(
                    demo_data.synthesize_clip(scene, style, rng, 2.0, 16000, 1)
                ),
                16000,
            )
            for _ in range(clips)
        ],
        axis=0,
    )


def test_pairs_alike_in_band_levels_unlike_other_scenes():
    # What a linear model on band statistics sees: the two scenes of a
    # pair nearly alike, every other scene clearly apart.
    rng = np.random.default_rng(3)
    levels = {scene: band_statistics(scene, 12, rng) for scene in SCENES}

    def distance(a, b):
        return np.abs(levels[a] - levels[b]).mean()

    for a, b in PAIRS:
        inside = distance(a, b)
        outside = min(distance(a, c) for c in SCENES if c not in (a, b))
        assert inside < outside / 5, (a, b, inside, outside)
