"""benchmarks/real_scenes without the network: its pure parts, and a
whole build from two small synthetic ``.deb`` packages.

The real packages are a 2.9 GB download, so CI never builds the real set;
here every step runs on generated noise: scene rules, duplicate grouping,
split, clip cutting, the TAU layout (read back by the recipe's data prep),
the Debian copyright parser, the ``.deb`` reader and byte-identical reruns.
"""

import csv
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from benchmarks import real_scenes as rs
from speechbrain_kd import tau_layout

ROOT = Path(__file__).resolve().parents[2]


def noise(seed, seconds, rate=16000, colour=0):
    """Noise with a slow random level: a crude rain, wind or stream."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * rate))
    for _ in range(colour):
        x = np.cumsum(x) * 0.05
        x -= np.convolve(x, np.ones(64) / 64, mode="same")
    level = np.repeat(rng.uniform(0.3, 1.0, int(seconds * 10) + 1), rate // 10)
    x = x * level[: len(x)]
    return 0.2 * x / np.max(np.abs(x))


# ------------------------------------------------------------ scenes


def test_scene_rules_map_files_to_scenes():
    assert rs.scenes.scene_of("0ad", "weather/rain_12.ogg") == "rain"
    assert rs.scenes.scene_of("0ad", "water/wavecrash_21.ogg") == "seashore"
    assert rs.scenes.scene_of("0ad", "water/river_slow_21.ogg") == "stream"
    assert rs.scenes.scene_of("redeclipse", "waterfall_huge.ogg") == "stream"
    assert rs.scenes.scene_of("redeclipse", "morph/wind2.ogg") == "wind"
    assert rs.scenes.scene_of("ufoai", "thunder3.ogg") == "thunderstorm"
    assert (
        rs.scenes.scene_of("stk", "lenautile_restaurant.ogg") == "market_crowd"
    )
    # not named by any rule, or named for another package
    assert rs.scenes.scene_of("0ad", "building/amb_farm_10.ogg") is None
    assert rs.scenes.scene_of("redeclipse", "distant_cars.ogg") is None
    assert rs.scenes.scene_of("stk", "weather/rain_12.ogg") is None


def test_rules_name_known_packages_and_clean_scenes():
    for package, pattern, scene in rs.scenes.SCENE_RULES:
        assert package in rs.packages.PACKAGES
        assert re.fullmatch(r"[a-z0-9_]+", scene)
        assert not pattern.startswith("/")
    for package, _, _ in rs.grouping.SAME_SOURCE:
        assert package in rs.packages.PACKAGES
    for spec in rs.packages.PACKAGES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", spec["sha256"])
        assert spec["pool"].endswith(f"_{spec['version']}_all.deb")


def test_stem_keys_join_numbered_loops_only():
    assert rs.scenes.stem_key("weather/rain_11.ogg") == rs.scenes.stem_key(
        "weather/rain_12.ogg"
    )
    assert (
        rs.scenes.stem_key("fire03.ogg")
        == rs.scenes.stem_key("fire1.ogg")
        == "fire"
    )
    assert rs.scenes.stem_key("smallfire.ogg") != rs.scenes.stem_key("fire.ogg")
    assert rs.scenes.stem_key("wind.ogg") != rs.scenes.stem_key(
        "morph/wind1.ogg"
    )
    assert rs.scenes.stem_key("exotic-birds_2.ogg") == "exotic_birds"
    assert rs.layout.tau_filename("stream", "stk_river_loop", 0) == (
        "audio/stream-stk_river_loop-0-a.wav"
    )
    with pytest.raises(ValueError):
        rs.layout.tau_filename("stream", "has-dash", 0)


# ---------------------------------------------------------- duplicates


def test_near_duplicate_falls_in_one_group():
    x = noise(1, 7.0)
    copy = 0.4 * np.roll(x, 1237)[: 6 * 16000]  # quieter, shifted, shorter
    copy_22k = rs.audio.resample(copy, 16000, 22050)  # stored at another rate
    prints = {
        "a": rs.grouping.fingerprints(x, 16000),
        "b": rs.grouping.fingerprints(copy_22k, 22050),
        "c": rs.grouping.fingerprints(noise(2, 7.0), 16000),
        "d": rs.grouping.fingerprints(noise(3, 7.0, colour=1), 16000),
    }
    groups, scores = rs.grouping.group_sources(prints)
    assert groups == [("a", "b"), ("c",), ("d",)]
    assert scores[("a", "b")] > 0.8
    for pair in [("a", "c"), ("a", "d"), ("c", "d"), ("b", "c")]:
        assert scores[pair] < rs.grouping.DUPLICATE_THRESHOLD


def test_silence_never_matches_silence(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = (0.1 * rng.standard_normal(6 * 16000) for _ in range(2))
    a[: 3 * 16000] = 0.0  # both start with 3 s of digital silence
    b[: 3 * 16000] = 0.0

    def score():
        return rs.grouping.similarity(
            rs.grouping.fingerprints(a, 16000),
            rs.grouping.fingerprints(b, 16000),
        )

    assert score() < rs.grouping.DUPLICATE_THRESHOLD / 2
    # without the silence mask, the step out of silence matches
    monkeypatch.setattr(rs.grouping, "FP_SILENCE_DBFS", -1e9)
    assert score() > 0.8


def test_links_join_without_audio():
    prints = {
        k: rs.grouping.fingerprints(noise(i, 4.0), 16000)
        for i, k in enumerate("xyz")
    }
    groups, _ = rs.grouping.group_sources(prints, links=[("x", "z")])
    assert groups == [("x", "z"), ("y",)]


def test_numbered_loops_join_only_with_the_same_credit():
    def source(digest, credit):
        return {"sha256": digest, "licence": "CC0", "copyright": [credit]}

    sources = {
        ("p", "rain_1.ogg"): source("1", "Ann"),
        ("p", "rain_2.ogg"): source("2", "Ann"),
        ("p", "birds.ogg"): source("3", "Bob"),
        ("p", "birds_2.ogg"): source("4", "Eve"),  # another recordist
        ("p", "same.ogg"): source("1", "Zed"),  # the bytes of rain_1
        ("q", "rain_3.ogg"): source("5", "Ann"),  # another package
    }
    links = rs.grouping._links(sources, [("p", "bird*", "one take")])
    pairs = {tuple(sorted(pair)) for pair in links}
    assert pairs == {
        (("p", "rain_1.ogg"), ("p", "same.ogg")),
        (("p", "rain_1.ogg"), ("p", "rain_2.ogg")),
        (("p", "birds.ogg"), ("p", "birds_2.ogg")),  # by the note only
    }
    assert rs.grouping._links(sources, []) != links


# --------------------------------------------------------------- split


def test_split_keeps_groups_whole_and_scenes_on_both_sides():
    rng = np.random.default_rng(0)
    counts = {
        f"scene{s}": {
            f"s{s}_g{g}": int(rng.integers(1, 21)) for g in range(2 + s)
        }
        for s in range(6)
    }
    side = rs.split.assign_split(counts, 0.7)
    assert set(side.values()) == {"train", "evaluate"}
    for scene, groups in counts.items():
        sides = {side[g] for g in groups}
        assert sides == {"train", "evaluate"}, scene
    assert rs.split.assign_split(counts, 0.7) == side  # deterministic
    total = sum(sum(g.values()) for g in counts.values())
    train = sum(
        n for g in counts.values() for k, n in g.items() if side[k] == "train"
    )
    assert 0.55 < train / total < 0.85


def test_split_reaches_the_fraction_and_respects_shared_groups():
    counts = {
        "a": {"shared": 10, "a1": 10, "a2": 10, "a3": 10},
        "b": {"shared": 3, "b1": 10},
    }
    side = rs.split.assign_split(counts, 0.75)
    train_a = sum(n for g, n in counts["a"].items() if side[g] == "train")
    assert train_a == 30
    # "shared" got its side in scene a; scene b still has both sides
    assert {side["shared"], side["b1"]} == {"train", "evaluate"}
    with pytest.raises(ValueError, match="both sides"):
        rs.split.assign_split({"solo": {"only": 5}}, 0.7)


# --------------------------------------------------------------- clips


def test_clip_windows_skip_silence_and_do_not_overlap():
    rate = 1000
    x = noise(6, 10.5, rate)
    x[2000:3000] = 0.0  # digital silence
    x[5000:6000] *= 10 ** (-40 / 20)  # 40 dB under the rest
    wins = rs.audio.clip_windows(rs.audio.to_stereo(x), rate, 1.0)
    starts = [a for a, _, _ in wins]
    assert starts == [0, 1000, 3000, 4000, 6000, 7000, 8000, 9000]
    assert all(b - a == 1000 for a, b, _ in wins)
    assert all(
        b1 <= a2 for (_, b1, _), (a2, _, _) in zip(wins, wins[1:], strict=False)
    )
    assert rs.audio.clip_windows(np.zeros(500), rate, 1.0) == []
    assert len(rs.split.select_evenly(range(40), 20)) == 20
    assert rs.split.select_evenly(range(40), 20)[:3] == [1, 3, 5]


def test_channels_and_rates():
    assert rs.audio.to_stereo(np.ones(5)).shape == (5, 2)
    assert rs.audio.to_stereo(np.ones((5, 1))).shape == (5, 2)
    three = np.arange(15.0).reshape(5, 3)
    assert np.array_equal(rs.audio.to_stereo(three), three[:, :2])
    assert rs.audio.resample(np.ones((96000, 1)), 96000, 16000).shape == (
        16000,
        1,
    )
    assert rs.audio.resample(np.ones(22050), 22050, 16000).shape == (16000,)


# -------------------------------------------------------------- layout


def read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t"))


def test_tau_layout_writer(tmp_path):
    clips = []
    for scene in ("rain", "wind"):
        for group, split in (("p_one", "train"), ("p_two", "evaluate")):
            for segment in range(2):
                clips.append(
                    {
                        "filename": rs.layout.tau_filename(
                            scene, f"{group}_{scene}", segment
                        ),
                        "scene": scene,
                        "identifier": f"{group}_{scene}",
                        "split": split,
                        "audio": rs.audio.to_stereo(noise(segment, 1.0, 8000)),
                    }
                )
    assert tau_layout.write_tau_layout(tmp_path, clips, 8000) == {
        "train": 4,
        "evaluate": 4,
    }
    meta = read_tsv(tmp_path / "meta.csv")
    assert meta[0] == ["filename", "scene_label", "identifier", "source_label"]
    assert len(meta) == 9 and all(len(row) == 4 for row in meta)
    assert meta[1] == [
        "audio/rain-p_one_rain-0-a.wav",
        "rain",
        "p_one_rain",
        "a",
    ]
    setup = tmp_path / "evaluation_setup"
    train = read_tsv(setup / "fold1_train.csv")
    evaluate = read_tsv(setup / "fold1_evaluate.csv")
    test = read_tsv(setup / "fold1_test.csv")
    assert train[0] == evaluate[0] == ["filename", "scene_label"]
    assert test[0] == ["filename"]
    assert [r[0] for r in test[1:]] == [r[0] for r in evaluate[1:]]
    assert {r[0] for r in train[1:]}.isdisjoint(r[0] for r in evaluate[1:])
    for row in meta[1:]:
        assert re.fullmatch(r"audio/[a-z0-9_]+-[a-z0-9_]+-\d+-a\.wav", row[0])
        info = soundfile.info(str(tmp_path / row[0]))
        assert (info.samplerate, info.channels, info.subtype) == (
            8000,
            2,
            "PCM_16",
        )
    assert "\t" in (tmp_path / "meta.csv").read_text().splitlines()[0]


# ------------------------------------------------------------ licences

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake

Files: *
Copyright: 2020 The Fake Team
License: GPL-2+

Files: data/sounds/*
Copyright: Ann Recordist
           <https://freesound.org/people/ann/>
License: CC-BY-3.0
Comment:
 From https://freesound.org/s/1/
 .
 Cut to loops.

Files: data/sounds/forbidden*
Copyright: Somebody
License: Proprietary
"""


def test_dep5_last_match_wins():
    stanzas = rs.licences.parse_dep5(COPYRIGHT)
    assert len(stanzas) == 3
    sound = rs.licences.licence_for(stanzas, "data/sounds/rain_1.wav")
    assert sound["license"] == "CC-BY-3.0"
    assert sound["copyright"] == [
        "Ann Recordist",
        "<https://freesound.org/people/ann/>",
    ]
    assert "freesound.org/s/1" in sound["comment"]
    assert (
        rs.licences.licence_for(stanzas, "data/other.txt")["license"]
        == "GPL-2+"
    )
    assert rs.licences.licence_for(stanzas, "data/sounds/forbidden.wav")[
        "license"
    ] == ("Proprietary")
    assert rs.licences.licence_ok("CC0") and not rs.licences.licence_ok(
        "Proprietary"
    )
    assert rs.licences.licence_ok("CC-BY-SA-3.0 or CC-BY-3.0")
    assert not rs.licences.licence_ok("CC0 and Proprietary")


# -------------------------------------------------- synthetic packages


def ar_member(name, body):
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n"
    return header.encode() + body + (b"\n" if len(body) % 2 else b"")


def make_deb(path, files):
    """A .deb (ar: debian-binary, control.tar.gz, data.tar.xz)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, body in sorted(files.items()):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:gz"):
        pass
    path.write_bytes(
        b"!<arch>\n"
        + ar_member("debian-binary", b"2.0\n")
        + ar_member("control.tar.gz", control.getvalue())
        + ar_member("data.tar.xz", data.getvalue())
    )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wav_bytes(x, rate):
    out = io.BytesIO()
    soundfile.write(out, x, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


SCENES = {"rain": 0, "wind": 1, "stream": 2}


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory):
    """Two packages, one with its sounds in a zip, in a download cache."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "debs").mkdir()
    plain = {"usr/share/doc/fake-a/copyright": COPYRIGHT.encode()}
    inner = {}
    seed = 10
    for scene, colour in SCENES.items():
        for take in ("alpha", "beta"):  # names without numbers
            x = noise(seed, 8.0, 16000, colour)
            seed += 1
            plain[f"usr/share/games/fake/data/sounds/{scene}/{take}.wav"] = (
                wav_bytes(x, 16000)
            )
        inner[f"snd/{scene}_x.wav"] = wav_bytes(
            noise(seed, 7.0, 22050, colour), 22050
        )
        seed += 1
    # a near-copy (gain, shift, rate) of a rain take, under another name
    take = noise(10, 8.0, 16000, 0)
    plain["usr/share/games/fake/data/sounds/rain/copy.wav"] = wav_bytes(
        rs_resample(0.5 * np.roll(take, 3333), 16000, 44100), 44100
    )
    plain["usr/share/games/fake/data/sounds/forbidden.wav"] = wav_bytes(
        take, 16000
    )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        for name, body in sorted(inner.items()):
            zf.writestr(name, body)
        zf.writestr("snd/notes.txt", "credits: Bob")
    packed = {
        "usr/share/doc/fake-b/copyright": (
            b"Files: *\nCopyright: Bob\nLicense: CC0\n"
        ),
        "usr/share/games/fakeb/pack.zip": zipped.getvalue(),
    }
    specs = {}
    for short, files, extra in (
        ("fa", plain, {"container": None}),
        ("fb", packed, {"container": "usr/share/games/fakeb/pack.zip"}),
    ):
        name = f"fake-{short[1]}"
        pool = f"pool/main/f/{name}/{name}_1.0-1_all.deb"
        digest = make_deb(cache / "debs" / Path(pool).name, files)
        specs[short] = {
            "package": name,
            "version": "1.0-1",
            "pool": pool,
            "size": (cache / "debs" / Path(pool).name).stat().st_size,
            "sha256": digest,
            "copyright": f"usr/share/doc/{name}/copyright",
            **extra,
        }
    specs["fa"].update(
        root="usr/share/games/fake/data/sounds/",
        upstream=("usr/share/games/fake/", ""),
        notes=[],
    )
    specs["fb"].update(root="snd/", upstream=("", ""), notes=["snd/notes.txt"])
    rules = [("fa", "forbidden.wav", "rain")]
    for scene in SCENES:
        rules += [("fa", f"{scene}/*.wav", scene), ("fb", f"{scene}_*", scene)]
    return cache, specs, rules


def rs_resample(x, rate, new_rate):
    from scipy.signal import resample_poly

    return resample_poly(x, new_rate, rate)


def folder_digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(
            p.read_bytes()
        ).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_deb_reader_and_extraction(fake_packages):
    cache, specs, rules = fake_packages
    with rs.packages.deb_data_tar(
        cache / "debs" / "fake-b_1.0-1_all.deb"
    ) as tar:
        names = [m.name for m in tar]
    assert names == [
        "./usr/share/doc/fake-b/copyright",
        "./usr/share/games/fakeb/pack.zip",
    ]
    base = rs.packages.extract_package("fb", specs["fb"], cache, rules)
    got = sorted(
        p.relative_to(base).as_posix()
        for p in base.rglob("*")
        if p.is_file() and p.name != ".complete.json"
    )
    container = "usr/share/games/fakeb/pack.zip!"
    assert got == sorted(
        [
            "usr/share/doc/fake-b/copyright",
            *[f"{container}/snd/{s}_x.wav" for s in SCENES],
            f"{container}/snd/notes.txt",
        ]
    )
    # a second call reuses the extraction (the .deb is not even read)
    deb = cache / "debs" / "fake-b_1.0-1_all.deb"
    saved = deb.read_bytes()
    deb.unlink()
    try:
        assert (
            rs.packages.extract_package("fb", specs["fb"], cache, rules) == base
        )
    finally:
        deb.write_bytes(saved)


def test_build_from_synthetic_packages(fake_packages, tmp_path):
    cache, specs, rules = fake_packages
    out = tmp_path / "set"
    options = {
        "cache": cache,
        "seconds": 1.0,
        "sample_rate": 16000,
        "max_clips_per_source": 10,
        "train_fraction": 0.7,
        "packages": specs,
        "rules": rules,
        "same_source": (),
    }
    info = rs.build(out, **options)
    assert sorted(info["scenes"]) == sorted(SCENES)
    assert any(
        "forbidden.wav: licence Proprietary" in s for s in info["skipped_files"]
    )
    # the near-copy joined its original: one identifier for both
    groups = info["groups"]
    rain = [g for g in groups.values() if "fa:rain/copy.wav" in g["files"]]
    assert rain[0]["files"] == ["fa:rain/alpha.wav", "fa:rain/copy.wav"]

    meta = read_tsv(out / "meta.csv")[1:]
    ident = {row[0]: row[2] for row in meta}
    setup = out / "evaluation_setup"
    train = [r[0] for r in read_tsv(setup / "fold1_train.csv")[1:]]
    evaluate = [r[0] for r in read_tsv(setup / "fold1_evaluate.csv")[1:]]
    assert {ident[f] for f in train}.isdisjoint(ident[f] for f in evaluate)
    scenes = {row[0]: row[1] for row in meta}
    assert (
        {scenes[f] for f in train}
        == {scenes[f] for f in evaluate}
        == set(SCENES)
    )
    # at most 10 clips per group, 16 kHz stereo 1-s 16-bit clips
    per_group = {}
    for row in meta:
        per_group[row[2]] = per_group.get(row[2], 0) + 1
        audio_info = soundfile.info(str(out / row[0]))
        assert (audio_info.samplerate, audio_info.channels) == (16000, 2)
        assert audio_info.frames == 16000
    assert max(per_group.values()) <= 10
    provenance = read_tsv(out / "provenance.tsv")
    assert provenance[0][:4] == [
        "filename",
        "scene_label",
        "identifier",
        "split",
    ]
    assert len(provenance) == len(meta) + 1
    assert all(r[7] in ("CC-BY-3.0", "CC0") for r in provenance[1:])
    assert (out / "PROVENANCE.md").read_text().startswith("# Provenance")
    assert (out / "licenses" / "fake-b_snd_notes_txt.txt").is_file()
    stored = json.loads((out / rs.layout.INFO_FILE).read_text())
    assert stored["options"]["seconds"] == 1.0
    assert stored["packages"]["fake-a"]["sha256"] == specs["fa"]["sha256"]

    # the recipe's data prep reads it as a TAU development set
    from dcase2019_prepare import prepare_dcase2019

    counts = prepare_dcase2019(out, tmp_path / "manifests")
    assert counts["test"] == len(evaluate)
    assert counts["train"] + counts["valid"] == len(train)

    # same options, another folder: the same bytes; same folder: kept
    again = tmp_path / "again"
    rs.build(again, **options)
    assert folder_digest(again) == folder_digest(out)
    before = (out / "meta.csv").stat().st_mtime_ns
    rs.build(out, **options)
    assert (out / "meta.csv").stat().st_mtime_ns == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_build_refuses_a_foreign_folder_and_bad_options(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        rs.build(tmp_path / "mine", tmp_path / "cache", packages={})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="train_fraction"):
        rs.build(tmp_path / "x", train_fraction=1.5, packages={})
    assert not (tmp_path / "x").exists()


def test_gzip_data_member(tmp_path):
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        info = tarfile.TarInfo("./a.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"a"))
    deb = tmp_path / "g.deb"
    deb.write_bytes(
        b"!<arch>\n"
        + ar_member("debian-binary", b"2.0\n")
        + ar_member("data.tar.gz", gzip.compress(body.getvalue()))
    )
    with rs.packages.deb_data_tar(deb) as tar:
        assert [m.name for m in tar] == ["./a.txt"]
    (tmp_path / "bad.deb").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a .deb"):
        with rs.packages.deb_data_tar(tmp_path / "bad.deb"):
            pass


def test_command_line_runs_as_a_folder_and_as_a_module(tmp_path):
    # without PYTHONPATH: the folder form finds its package by itself
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = str(tmp_path / "out")
    for command, cwd in (
        ([sys.executable, str(ROOT / "benchmarks" / "real_scenes")], tmp_path),
        ([sys.executable, "-m", "benchmarks.real_scenes"], ROOT),
    ):
        result = subprocess.run(
            [*command, out, "--train_fraction", "1.5"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith(
            "error: train_fraction must be in (0, 1), got 1.5\n"
        )
    assert not (tmp_path / "out").exists()
