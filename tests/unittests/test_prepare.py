"""Data prep on the three TAU layouts, including bad and missing files."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from dcase2019_prepare import FIELDS, prepare_dcase2019, prepare_from_settings

from speechbrain_kd.phase import PhaseTask, dataio_prep, prepare_data

SCENES = ["airport", "bus", "metro"]


def make_layout(root, layout, n_locations=4, segments=3):
    """A tiny TAU-layout folder: 2019, 2020 (mobile) or 2022 (sub-segments)."""
    rate, channels, seconds = {
        "2019": (48000, 2, 0.2),
        "2020": (44100, 1, 0.2),
        "2022": (44100, 1, 0.1),
    }[layout]
    devices = ["a"] if layout == "2019" else ["a", "b", "s1"]
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    meta, train, evaluate = [], [], []
    for scene in SCENES:
        for loc in range(n_locations):
            for seg in range(segments):
                device = devices[seg % len(devices)]
                sub = "-0" if layout == "2022" else ""
                name = f"audio/{scene}-lyon-{loc}-{seg}{sub}-{device}.wav"
                shape = (int(rate * seconds), channels)
                soundfile.write(root / name, np.zeros(shape), rate)
                meta.append([name, scene, f"lyon-{loc}", device])
                (evaluate if loc == 0 else train).append([name, scene])
    write_tsv(
        root / "meta.csv",
        ["filename", "scene_label", "identifier", "source_label"],
        meta,
    )
    setup = root / "evaluation_setup"
    write_tsv(setup / "fold1_train.csv", ["filename", "scene_label"], train)
    write_tsv(
        setup / "fold1_evaluate.csv", ["filename", "scene_label"], evaluate
    )
    write_tsv(setup / "fold1_test.csv", ["filename"], [r[:1] for r in evaluate])
    return root


def write_tsv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(header)
        writer.writerows(rows)


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("layout", ["2019", "2020", "2022"])
def test_layouts_give_grouped_splits(tmp_path, layout):
    data = make_layout(tmp_path / "data", layout)
    counts = prepare_dcase2019(data, tmp_path / "out", valid_ratio=0.3)
    train = read(tmp_path / "out" / "train.csv")
    valid = read(tmp_path / "out" / "valid.csv")
    test = read(tmp_path / "out" / "test.csv")
    assert counts == {
        "train": len(train),
        "valid": len(valid),
        "test": len(test),
        "skipped": 0,
    }
    assert len(train) + len(valid) == 27 and len(test) == 9
    assert {r["identifier"] for r in train}.isdisjoint(
        r["identifier"] for r in valid
    )
    assert {r["scene"] for r in valid} == set(SCENES)
    row = train[0]
    assert row["ID"] == Path(row["wav"]).stem and Path(row["wav"]).is_file()
    assert row["city"] == "lyon"
    expected_rate = "48000" if layout == "2019" else "44100"
    assert row["sample_rate"] == expected_rate
    if layout != "2019":
        assert {r["device"] for r in train} == {"a", "b", "s1"}


def test_skips_when_prepared_and_redoes_when_options_change(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    out = tmp_path / "out"
    prepare_dcase2019(data, out, valid_ratio=0.3)
    (out / "train.csv").write_text("stale")
    prepare_dcase2019(data, out, valid_ratio=0.3)
    assert (out / "train.csv").read_text() == "stale"  # skipped
    prepare_dcase2019(data, out, valid_ratio=0.2)
    assert (out / "train.csv").read_text() != "stale"  # redone


def test_changed_fold_file_is_not_mistaken_for_prepared(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    out = tmp_path / "out"
    prepare_dcase2019(data, out, valid_ratio=0.3)
    fold = data / "evaluation_setup" / "fold1_evaluate.csv"
    fold.write_text("\n".join(fold.read_text().splitlines()[:-1]) + "\n")
    assert prepare_dcase2019(data, out, valid_ratio=0.3)["test"] == 8


def test_every_bad_file_is_named_in_one_error(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    missing = data / "audio" / "bus-lyon-1-0-a.wav"
    corrupt = data / "audio" / "metro-lyon-2-1-a.wav"
    missing.unlink()
    corrupt.write_bytes(b"not a wav file")
    with pytest.raises(ValueError) as error:
        prepare_dcase2019(data, tmp_path / "out")
    message = str(error.value)
    assert "2 bad audio file(s)" in message
    assert f"{missing}: missing" in message
    assert f"{corrupt}: unreadable" in message
    counts = prepare_dcase2019(data, tmp_path / "out", skip_bad_files=True)
    assert counts["skipped"] == 2
    assert counts["train"] + counts["valid"] == 25


def test_wrong_rate_and_channels_are_named(tmp_path):
    data = make_layout(tmp_path / "data", "2020")
    with pytest.raises(
        ValueError, match="sample rate 44100 Hz, expected 48000"
    ):
        prepare_dcase2019(data, tmp_path / "out", sample_rate=48000)
    with pytest.raises(ValueError, match="1 channel\\(s\\), expected 2"):
        prepare_dcase2019(data, tmp_path / "out", channels=2)


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_dcase2019(tmp_path / "nowhere", tmp_path / "out")
    data = make_layout(tmp_path / "data", "2019")
    (data / "evaluation_setup" / "fold1_train.csv").unlink()
    with pytest.raises(FileNotFoundError, match="fold1_train.csv is missing"):
        prepare_dcase2019(data, tmp_path / "out")


def test_scene_unknown_to_meta_is_named_with_its_line(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    fold = data / "evaluation_setup" / "fold1_train.csv"
    lines = fold.read_text().splitlines()
    lines[3] = lines[3].replace("\tairport", "\tbeach")
    fold.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match="fold1_train.csv, line 4: scene 'beach'"
    ):
        prepare_dcase2019(data, tmp_path / "out")


def test_file_absent_from_meta_is_named(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    meta = data / "meta.csv"
    lines = meta.read_text().splitlines()
    dropped = lines.pop(5).split("\t")[0]
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{dropped} is not listed"):
        prepare_dcase2019(data, tmp_path / "out")


def test_manifest_columns_and_2022_sub_segment_ids(tmp_path):
    data = make_layout(tmp_path / "data", "2022")
    prepare_dcase2019(data, tmp_path / "out", valid_ratio=0.3)
    with open(tmp_path / "out" / "test.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == FIELDS  # the declared columns, in their order
    row = read(tmp_path / "out" / "test.csv")[0]
    assert row["ID"] == "airport-lyon-0-0-0-a"
    assert float(row["duration"]) == pytest.approx(0.1, abs=1e-3)
    assert row["channels"] == "1" and row["device"] == "a"


def test_valid_split_is_seeded_and_near_the_ratio(tmp_path):
    data = make_layout(tmp_path / "data", "2019", n_locations=11)
    splits = []
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        prepare_dcase2019(data, out, valid_ratio=0.2, seed=seed)
        splits.append(sorted(r["ID"] for r in read(out / "valid.csv")))
    prepare_dcase2019(data, tmp_path / "again", valid_ratio=0.2, seed=0)
    again = sorted(r["ID"] for r in read(tmp_path / "again" / "valid.csv"))
    assert again == splits[0]
    assert len({tuple(s) for s in splits}) > 1
    # 10 training locations of 3 clips per scene: 2 of them held out.
    assert all(len(s) == 3 * 2 * len(SCENES) for s in splits)


def test_every_scene_is_in_valid_even_with_a_tiny_ratio(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    prepare_dcase2019(data, tmp_path / "out", valid_ratio=0.01)
    valid = read(tmp_path / "out" / "valid.csv")
    train = read(tmp_path / "out" / "train.csv")
    assert {r["scene"] for r in valid} == set(SCENES)
    assert {r["scene"] for r in train} == set(SCENES)
    assert len(valid) == 3 * len(SCENES)  # one location per scene
    with pytest.raises(ValueError, match="valid_ratio must be in"):
        prepare_dcase2019(data, tmp_path / "out", valid_ratio=1.0)


def test_skipped_files_are_counted_in_the_options_file(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    (data / "audio" / "bus-lyon-1-0-a.wav").unlink()
    out = tmp_path / "out"
    prepare_dcase2019(data, out, skip_bad_files=True)
    saved = json.loads((out / "prepare_opts.json").read_text())
    assert saved["counts"]["skipped"] == 1
    assert "bus-lyon-1-0-a.wav: missing" in saved["bad_files"][0]
    assert saved["options"]["skip_bad_files"] is True


def test_interrupted_run_is_not_taken_as_prepared(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    out = tmp_path / "out"
    prepare_dcase2019(data, out, valid_ratio=0.3)
    (out / "prepare_opts.json").unlink()  # as if killed while writing
    (out / "train.csv").write_text("half")
    prepare_dcase2019(data, out, valid_ratio=0.3)
    assert (out / "train.csv").read_text().startswith("ID,duration")


def test_missing_meta_and_short_files_are_named(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    with pytest.raises(ValueError, match="shorter than 0.5 s"):
        prepare_dcase2019(data, tmp_path / "out", min_duration=0.5)
    (data / "meta.csv").unlink()
    with pytest.raises(FileNotFoundError, match="meta.csv is missing"):
        prepare_dcase2019(data, tmp_path / "out")


def test_file_listed_twice_is_refused(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    train = data / "evaluation_setup" / "fold1_train.csv"
    evaluate = data / "evaluation_setup" / "fold1_evaluate.csv"
    leaked = train.read_text().splitlines()[1]
    evaluate.write_text(evaluate.read_text() + leaked + "\n")
    with pytest.raises(ValueError, match="is listed again"):
        prepare_dcase2019(data, tmp_path / "out")


def test_runs_through_run_on_main(tmp_path):
    from speechbrain.utils.distributed import run_on_main

    data = make_layout(tmp_path / "data", "2020")
    run_on_main(
        prepare_dcase2019,
        kwargs={"data_folder": data, "save_folder": tmp_path / "out"},
    )
    assert len(read(tmp_path / "out" / "test.csv")) == 9


def test_truncated_file_is_named(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    cut = data / "audio" / "bus-lyon-2-1-a.wav"
    soundfile.write(cut, np.full((9600, 2), 0.1), 48000)  # 0.2 s
    cut.write_bytes(cut.read_bytes()[:20000])  # a copy that stopped early
    with pytest.raises(ValueError, match=f"{cut}: truncated") as error:
        prepare_dcase2019(data, tmp_path / "out")
    assert "announces 38400 bytes of audio" in str(error.value)
    assert not (tmp_path / "out" / "train.csv").exists()


@pytest.mark.parametrize("fold", ["fold1_train.csv", "fold1_evaluate.csv"])
def test_empty_split_is_refused(tmp_path, fold):
    data = make_layout(tmp_path / "data", "2019")
    path = data / "evaluation_setup" / fold
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=f"{fold} gives no .* clip"):
        prepare_dcase2019(data, tmp_path / "out")


def test_all_bad_files_skipped_leave_an_empty_split_named(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    for path in (data / "audio").glob("*-lyon-0-*"):  # every test clip
        path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"no test clip \(9 bad files"):
        prepare_dcase2019(data, tmp_path / "out", skip_bad_files=True)


def test_files_of_another_format_are_named_in_a_warning(tmp_path, caplog):
    data = make_layout(tmp_path / "data", "2019")
    odd = data / "audio" / "metro-lyon-1-2-a.wav"
    soundfile.write(odd, np.zeros((3200, 1)), 16000)
    with caplog.at_level("WARNING"):
        counts = prepare_dcase2019(data, tmp_path / "out")
    assert counts["skipped"] == 0  # still used: resampled and adapted
    assert f"{odd} (16000 Hz)" in caplog.text
    assert f"{odd} (1 channel(s))" in caplog.text
    assert "differ from the 48000 Hz of the others" in caplog.text


def read_names(path):
    with open(path, newline="") as f:
        return [row["wav"] for row in csv.DictReader(f)]


def test_train_subset_keeps_only_the_listed_clips(tmp_path):
    data = make_layout(tmp_path / "d", "2022")
    train = (data / "evaluation_setup" / "fold1_train.csv").read_text()
    names = [line.split("\t")[0] for line in train.splitlines()[1:]]
    listed = names[::3]
    (data / "split_setup").mkdir()
    write_tsv(
        data / "split_setup" / "split25.csv",
        ["filename", "scene_label"],
        [[n, n.split("/")[1].split("-")[0]] for n in listed],
    )
    counts = prepare_dcase2019(data, tmp_path / "m", valid_ratio=0.3)
    subset = prepare_dcase2019(
        data, tmp_path / "s", valid_ratio=0.3, train_subset=25
    )
    assert subset["train"] + subset["valid"] == len(listed)
    assert subset["test"] == counts["test"]  # the test split stays whole
    kept = read_names(tmp_path / "s" / "train.csv")
    kept += read_names(tmp_path / "s" / "valid.csv")
    assert sorted(kept) == sorted(str((data / n).absolute()) for n in listed)


def test_train_subset_errors_name_the_setting_file_and_line(tmp_path):
    data = make_layout(tmp_path / "d", "2022")
    with pytest.raises(ValueError, match="train_subset=30: give one of 5, "):
        prepare_dcase2019(data, tmp_path / "m", train_subset=30)
    with pytest.raises(FileNotFoundError, match="split_setup/split10.csv"):
        prepare_dcase2019(data, tmp_path / "m", train_subset=10)
    (data / "split_setup").mkdir()
    test_clip = "audio/airport-lyon-0-0-0-a.wav"  # location 0 is test
    write_tsv(
        data / "split_setup" / "split10.csv",
        ["filename", "scene_label"],
        [["audio/bus-lyon-1-0-0-a.wav", "bus"], [test_clip, "airport"]],
    )
    with pytest.raises(
        ValueError, match=r"split10.csv, line 3: audio/airport-lyon-0-0-0-a"
    ):
        prepare_dcase2019(data, tmp_path / "m", train_subset=10)
    other = tmp_path / "elsewhere"
    other.mkdir()
    write_tsv(
        other / "split10.csv",
        ["filename", "scene_label"],
        [["audio/bus-lyon-1-0-0-a.wav", "bus"]] * 2,
    )
    with pytest.raises(ValueError, match="line 3: .* is listed again"):
        prepare_dcase2019(
            data, tmp_path / "m", train_subset=10, split_setup_folder=other
        )


def test_changed_subset_file_is_not_mistaken_for_prepared(tmp_path):
    data = make_layout(tmp_path / "d", "2022")
    (data / "split_setup").mkdir()
    subset = data / "split_setup" / "split50.csv"
    # One clip of every scene: the test split's scenes need training clips.
    one = [[f"audio/{s}-lyon-1-0-0-a.wav", s] for s in SCENES]
    write_tsv(subset, ["filename", "scene_label"], one)
    first = prepare_dcase2019(data, tmp_path / "m", 0.0, train_subset=50)
    two = one + [["audio/bus-lyon-2-0-0-a.wav", "bus"]]
    write_tsv(subset, ["filename", "scene_label"], two)
    second = prepare_dcase2019(data, tmp_path / "m", 0.0, train_subset=50)
    assert (first["train"], second["train"]) == (3, 4)


def relabel(data, line, scene):
    """Give the clip on ``line`` of ``fold1_evaluate.csv`` another scene."""
    fold = data / "evaluation_setup" / "fold1_evaluate.csv"
    lines = fold.read_text().splitlines()
    name = lines[line - 1].split("\t")[0]
    lines[line - 1] = f"{name}\t{scene}"
    fold.write_text("\n".join(lines) + "\n")
    meta = data / "meta.csv"
    meta.write_text(
        "".join(
            f"{name}\t{scene}\t" + row.split("\t", 2)[2] + "\n"
            if row.startswith(name + "\t")
            else row + "\n"
            for row in meta.read_text().splitlines()
        )
    )
    return name


@pytest.mark.parametrize("skip_bad_files", [False, True])
def test_scene_absent_from_training_is_named_with_its_line(
    tmp_path, skip_bad_files
):
    data = make_layout(tmp_path / "data", "2019")
    name = relabel(data, 4, "beach")
    (data / "audio" / "bus-lyon-2-0-a.wav").unlink()  # and a missing file
    with pytest.raises(ValueError) as error:
        prepare_dcase2019(data, tmp_path / "out", skip_bad_files=skip_bad_files)
    message = str(error.value)
    assert (
        f"fold1_evaluate.csv, line 4: scene 'beach' of {Path(name).name} "
        "has no clip in the training split"
    ) in message
    assert "The labels are the scenes of the training split" in message
    # Bad files share the one message, unless they are skipped.
    assert ("bus-lyon-2-0-a.wav: missing" in message) is not skip_bad_files
    assert not (tmp_path / "out" / "test.csv").exists()


def test_scene_whose_training_clips_are_all_skipped_is_named(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    for path in (data / "audio").glob("metro-lyon-[123]-*"):
        path.write_bytes(b"")  # every training clip of metro
    with pytest.raises(
        ValueError,
        match=r"(?s)3 clip\(s\) of a scene absent from training.*"
        r"training split \(9 bad files left out\).*line 8: scene 'metro'",
    ):
        prepare_dcase2019(data, tmp_path / "out", skip_bad_files=True)


def test_labels_come_from_the_training_split_only(tmp_path):
    """A test split without one of the training scenes still has its label."""
    data = make_layout(tmp_path / "data", "2019")
    fold = data / "evaluation_setup" / "fold1_evaluate.csv"
    fold.write_text(
        "".join(
            line + "\n"
            for line in fold.read_text().splitlines()
            if "\tairport" not in line
        )
    )
    settings = {
        "data_folder": data,
        "prepare_folder": tmp_path / "manifests",
        "valid_ratio": 0.3,
        "seed": 1,
        "skip_bad_files": False,
        "train_subset": None,
        "split_setup_folder": None,
    }
    assert prepare_data(settings, prepare_from_settings, "scene") == SCENES
    hparams = dict(
        settings,
        save_folder=tmp_path / "save",
        sample_rate=48000,
        n_channels=2,
        crop_seconds=None,
        phase="baseline",
    )
    datasets, _ = dataio_prep(hparams, PhaseTask("scene", print))
    assert {row["scene"] for row in datasets["test"].data.values()} == {
        "bus",
        "metro",
    }
    encoder = hparams["label_encoder"]
    assert [encoder.ind2lab[i] for i in range(len(encoder))] == SCENES
    assert sorted(int(item["label_encoded"]) for item in datasets["test"]) == (
        [1] * 3 + [2] * 3
    )


def test_nonfinite_samples_are_named_with_the_bad_files(tmp_path):
    data = make_layout(tmp_path / "data", "2019")
    nan = data / "audio" / "bus-lyon-1-2-a.wav"  # training
    inf = data / "audio" / "metro-lyon-0-1-a.wav"  # test
    fine = data / "audio" / "airport-lyon-2-0-a.wav"
    samples = np.full((9600, 2), 0.1, dtype=np.float32)
    soundfile.write(fine, samples, 48000, subtype="FLOAT")
    samples[4800, 1] = np.nan
    soundfile.write(nan, samples, 48000, subtype="FLOAT")
    samples[4800, 1], samples[7200:7202] = 0.1, -np.inf
    soundfile.write(inf, samples, 48000, subtype="DOUBLE")
    missing = data / "audio" / "bus-lyon-3-0-a.wav"
    missing.unlink()
    with pytest.raises(ValueError) as error:
        prepare_dcase2019(data, tmp_path / "out")
    message = str(error.value)
    assert message.startswith("3 bad audio file(s) in ")
    assert (
        f"{nan}: 1 frame(s) of NaN or infinite samples, the first at 0.100 s"
    ) in message
    assert f"{inf}: 2 frame(s) of NaN or infinite samples, the first at " in (
        message
    )
    assert f"{missing}: missing" in message
    assert str(fine) not in message  # float samples, all finite
    counts = prepare_dcase2019(data, tmp_path / "out", skip_bad_files=True)
    assert counts["skipped"] == 3
