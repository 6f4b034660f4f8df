"""The second task: ESC-50 data prep, teachers and a distilled student.

Bad metadata is named by row; a teacher learns classes that differ in
pitch and rhythm; a student distils two teachers through the library's
soft-label cache and KD loss; a student over a limit is refused.
"""

import csv
import json

import pytest
import torch
from esc50_demo import generate_esc50_demo
from esc50_prepare import prepare_esc50

from tests.conftest import ROOT, run_script

RECIPE = ROOT / "recipes" / "ESC50"
SMALL = {"n_classes": 3, "clips_per_class": 5, "seconds": 1.0}


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    folder = tmp_path_factory.mktemp("esc50") / "data"
    return generate_esc50_demo(
        folder, n_classes=5, clips_per_class=20, seconds=2.0, sample_rate=8000
    )


def rewrite_meta(folder, change):
    path = folder / "meta" / "esc50.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows = change(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_folds_split_by_source_and_labels_are_categories(tmp_path):
    data = generate_esc50_demo(tmp_path / "d", **SMALL, sample_rate=8000)
    counts = prepare_esc50(data, tmp_path / "m", test_fold=3, valid_fold=5)
    assert counts == {"train": 9, "valid": 3, "test": 3}
    with open(tmp_path / "m" / "test.csv", newline="") as f:
        test = list(csv.DictReader(f))
    assert {row["fold"] for row in test} == {"3"}
    assert {row["label"] for row in test} == {"dog", "rooster", "pig"}
    with open(tmp_path / "m" / "train.csv", newline="") as f:
        train_sources = {row["src_file"] for row in csv.DictReader(f)}
    assert not train_sources & {row["src_file"] for row in test}
    assert prepare_esc50(data, tmp_path / "m", 3, 5) == counts  # reused
    esc10 = prepare_esc50(data, tmp_path / "e", test_fold=3, esc10=True)
    assert sum(esc10.values()) == 10  # dog and rooster only


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda rows: [r for r in rows if r["fold"] != "4"],
            r"has no clip in fold\(s\) \[4\]",
        ),
        (
            lambda rows: [dict(rows[0], target="57")] + rows[1:],
            "esc50.csv, line 2: target 57 is outside the label set 0-49",
        ),
        (
            lambda rows: rows[:3] + [dict(rows[3], category="cat")] + rows[4:],
            "line 5: target 0 is 'cat' but 'dog' at ",
        ),
        (
            lambda rows: [dict(rows[0], fold="six")] + rows[1:],
            "line 2: fold 'six' is not a whole number",
        ),
        (
            lambda rows: [dict(rows[0], filename="1-9-A-0.wav")] + rows[1:],
            "line 2: .*audio/1-9-A-0.wav is missing",
        ),
    ],
    ids=["missing-fold", "target-outside", "two-categories", "fold-text",
         "missing-file"],
)  # fmt: skip
def test_bad_metadata_is_named_by_row(tmp_path, change, message):
    data = generate_esc50_demo(tmp_path / "d", **SMALL, sample_rate=8000)
    rewrite_meta(data, change)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare_esc50(data, tmp_path / "m")
    assert not (tmp_path / "m" / "train.csv").exists()


def test_bad_folds_are_refused(tmp_path):
    data = generate_esc50_demo(tmp_path / "d", **SMALL, sample_rate=8000)
    with pytest.raises(ValueError, match="valid_fold=2 is the test fold"):
        prepare_esc50(data, tmp_path / "m", test_fold=2, valid_fold=2)
    with pytest.raises(FileNotFoundError, match="meta/esc50.csv is missing"):
        prepare_esc50(tmp_path, tmp_path / "m")


def train(hparams, data, out, *extra):
    return run_script(
        [
            RECIPE / "train.py",
            RECIPE / "hparams" / hparams,
            f"--data_folder={data}",
            f"--output_folder={out}",
            "--sample_rate=8000",
            "--batch_size=8",
            "--device=cpu",
            *extra,
        ],
        check=False,
    )


@pytest.mark.slow
def test_teachers_learn_and_a_student_distils_them(esc50, tmp_path):
    teachers = []
    for seed in (1, 2):
        out = tmp_path / f"teacher{seed}"
        result = train(
            "teacher.yaml", esc50, out, f"--seed={seed}",
            "--number_of_epochs=12",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        accuracy = json.loads((out / "test_results.json").read_text())
        assert accuracy["n_clips"] == 20  # fold 1: 4 clips of 5 classes
        assert accuracy["accuracy"] >= 0.6  # chance: 0.2
        teachers.append(str(out))
    student = tmp_path / "student"
    result = train(
        "student.yaml", esc50, student, "--number_of_epochs=12",
        f"--teacher_folders=[{','.join(teachers)}]",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (student / "save" / "soft_labels.pt").is_file()
    report = json.loads((student / "test_results.json").read_text())
    assert report["accuracy"] >= 0.6
    cost = json.loads((student / "complexity.json").read_text())
    teacher_cost = json.loads(
        (tmp_path / "teacher1" / "complexity.json").read_text()
    )
    assert cost["parameters"] < teacher_cost["parameters"] / 4
    spec = json.loads((student / "save" / "model_spec.json").read_text())
    assert spec["labels"] == ["cow", "dog", "frog", "pig", "rooster"]


def test_student_over_the_limit_is_refused_before_training(esc50, tmp_path):
    out = tmp_path / "student"
    result = train(
        "student.yaml", esc50, out, "--teacher_folders=[/nowhere]",
        "--max_params=1000",
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "--max_params=1000: the student has " in last
    assert "Traceback" not in result.stderr
    assert not (out / "save").exists()


@pytest.mark.slow
def test_an_exported_model_teaches_a_student_of_another_family(esc50, tmp_path):
    """Run 1 trains and exports a log-mel CNN; run 2 distils that export,
    loaded as a pretrained SpeechBrain classifier, into the low-complexity
    family (the README's command with a local folder for the hub id)."""
    teacher = tmp_path / "teacher"
    result = train(
        "teacher.yaml", esc50, teacher, "--seed=1", "--number_of_epochs=12"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    export = tmp_path / "exported_teacher"
    result = run_script(["-m", "speechbrain_kd.export", teacher, export])
    student = tmp_path / "student"
    result = train(
        "student.yaml", esc50, student, "--number_of_epochs=12",
        f"--teacher_folders=[{export}]",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    cache = torch.load(student / "save" / "soft_labels.pt")
    assert cache["teacher_folders"] == [str(export)]
    report = json.loads((student / "test_results.json").read_text())
    assert report["accuracy"] >= 0.6  # chance: 0.2
    # The low-complexity family (inverted residual blocks), 4x smaller.
    spec = json.loads((student / "save" / "model_spec.json").read_text())
    assert spec["embedding_model"]["config"]["block"] == "inverted_residual"
    teacher_spec = json.loads(
        (teacher / "save" / "model_spec.json").read_text()
    )
    assert teacher_spec["embedding_model"]["config"]["block"] == "conv"
    cost, teacher_cost = (
        json.loads((run / "complexity.json").read_text())
        for run in (student, teacher)
    )
    assert cost["parameters"] < teacher_cost["parameters"] / 4


@pytest.mark.slow
def test_a_finished_folder_is_not_overwritten_by_other_settings(
    esc50, tmp_path
):
    out = tmp_path / "teacher"
    first = train("teacher.yaml", esc50, out, "--number_of_epochs=1")
    assert first.returncode == 0, first.stderr[-2000:]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    refused = train("teacher.yaml", esc50, out, "--number_of_epochs=1",
                    "--embedding_dim=16")  # fmt: skip
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert "holds a finished phase made with other settings (" in last
    assert "embedding_dim: " in last and "16 now" in last
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == (
        before
    )
    again = train("teacher.yaml", esc50, out, "--number_of_epochs=1",
                  "--embedding_dim=16", "--overwrite=True")  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    spec = json.loads((out / "save" / "model_spec.json").read_text())
    assert spec["embedding_model"]["config"]["embedding_dim"] == 16
