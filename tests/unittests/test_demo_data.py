"""Demo data: the TAU layout, split by location, deterministic by seed."""

import csv

import pytest

from speechbrain_kd.demo_data import SCENES, generate_demo_dataset

OPTIONS = {"clips_per_scene": 8, "seconds": 0.5, "sample_rate": 8000}


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_layout_and_location_split(tmp_path):
    data = generate_demo_dataset(tmp_path / "d", **OPTIONS)
    meta = rows(data / "meta.csv")
    assert len(meta) == 80 and {r["scene_label"] for r in meta} == set(SCENES)
    identifier = {r["filename"]: r["identifier"] for r in meta}
    train = rows(data / "evaluation_setup" / "fold1_train.csv")
    evaluate = rows(data / "evaluation_setup" / "fold1_evaluate.csv")
    test = rows(data / "evaluation_setup" / "fold1_test.csv")
    assert len(train) + len(evaluate) == 80
    assert [r["filename"] for r in test] == [r["filename"] for r in evaluate]
    assert {identifier[r["filename"]] for r in train}.isdisjoint(
        identifier[r["filename"]] for r in evaluate
    )
    name = meta[0]["filename"]
    scene, city, location, segment, device = name[6:-4].split("-")
    assert (scene, device) == (meta[0]["scene_label"], "a")
    assert meta[0]["identifier"] == f"{city}-{location}"


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    a = generate_demo_dataset(tmp_path / "a", seed=3, **OPTIONS)
    b = generate_demo_dataset(tmp_path / "b", seed=3, **OPTIONS)
    c = generate_demo_dataset(tmp_path / "c", seed=4, **OPTIONS)
    for wav in sorted((a / "audio").glob("*.wav"))[:5]:
        assert wav.read_bytes() == (b / "audio" / wav.name).read_bytes()
    first = sorted((a / "audio").glob("*.wav"))[0]
    assert first.read_bytes() != (c / "audio" / first.name).read_bytes()


def test_reuses_identical_set_refuses_others(tmp_path):
    folder = generate_demo_dataset(tmp_path / "d", **OPTIONS)
    stamp = (folder / "meta.csv").stat().st_mtime_ns
    generate_demo_dataset(folder, **OPTIONS)
    assert (folder / "meta.csv").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="not a demo set made with"):
        generate_demo_dataset(folder, **{**OPTIONS, "seed": 1})
    with pytest.raises(ValueError, match="at least 8"):
        generate_demo_dataset(tmp_path / "e", clips_per_scene=4)
