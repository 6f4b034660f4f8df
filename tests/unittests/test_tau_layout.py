"""The one TAU-layout writer: the demo set and the real-recording set
write the same files for the same clips."""

import csv
import hashlib
import random

import pytest
import soundfile

from benchmarks.real_scenes import layout
from speechbrain_kd.demo_data import generate_demo_dataset
from speechbrain_kd.tau_layout import write_tau_lists

LISTS = [
    "meta.csv",
    "evaluation_setup/fold1_train.csv",
    "evaluation_setup/fold1_evaluate.csv",
    "evaluation_setup/fold1_test.csv",
]


def read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t"))[1:]


def digests(folder, names):
    return {
        n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names
    }


def test_demo_and_real_sets_write_the_same_files(tmp_path):
    demo = generate_demo_dataset(
        tmp_path / "demo", 8, 1.0, 8000, scenes=["bus", "park"]
    )
    evaluate = {r[0] for r in read_tsv(demo / LISTS[2])}
    clips = [
        {
            "filename": name,
            "scene": scene,
            "identifier": identifier,
            "split": "evaluate" if name in evaluate else "train",
            "key": name,  # each demo clip is a whole source file
            "start": 0,
            "stop": soundfile.info(str(demo / name)).frames,
        }
        for name, scene, identifier, _ in read_tsv(demo / "meta.csv")
    ]
    # the real-set builder orders the lists itself, whatever it is given
    random.Random(0).shuffle(clips)
    files = {clip["key"]: demo / clip["key"] for clip in clips}
    real = tmp_path / "real"
    assert layout.write_set(real, clips, files, 8000) == {
        "train": 12,
        "evaluate": 4,
    }
    names = LISTS + sorted(files)
    assert digests(real, names) == digests(demo, names)
    assert sorted(p.name for p in (real / "audio").iterdir()) == sorted(
        p.name for p in (demo / "audio").iterdir()
    )


def test_lists_keep_the_order_given_and_the_device(tmp_path):
    clips = [
        {"filename": "audio/b.wav", "scene": "park", "identifier": "x-1",
         "split": "evaluate", "device": "s4"},
        {"filename": "audio/a.wav", "scene": "bus", "identifier": "x-0",
         "split": "train"},
    ]  # fmt: skip
    assert write_tau_lists(tmp_path, clips) == {"train": 1, "evaluate": 1}
    assert read_tsv(tmp_path / "meta.csv") == [
        ["audio/b.wav", "park", "x-1", "s4"],
        ["audio/a.wav", "bus", "x-0", "a"],
    ]
    assert read_tsv(tmp_path / LISTS[3]) == [["audio/b.wav"]]


def test_an_unknown_split_is_refused_before_writing(tmp_path):
    clips = [
        {"filename": "audio/a.wav", "scene": "bus", "identifier": "x-0",
         "split": "valid"},
    ]  # fmt: skip
    with pytest.raises(ValueError, match="split 'valid' is not one of"):
        write_tau_lists(tmp_path, clips)
    assert not any(tmp_path.iterdir())
