"""End to end: every phase of the recipe on a tiny demo set.

These tests train real models (a few minutes in all on 2 CPU cores) and check
what the method promises on data whose answer is known: the synthetic scenes
are learnable, so the baseline beats chance, and the specialists and the
student are judged against the baseline they start from.
"""

import json
from pathlib import Path

import pytest

from tests.conftest import (
    RECORD_TRAINING_BATCHES,
    pipeline_args,
    relabelled_copy,
    run_script,
)

pytestmark = pytest.mark.slow


def test_summary_reports_what_each_phase_wrote(pipeline_run):
    from speechbrain_kd.pairs import pair_errors

    summary, out = pipeline_run["summary"], pipeline_run["folder"]

    def written(entry):
        folder = Path(entry["output_folder"])
        return json.loads((folder / "test_results.json").read_text())

    assert len(summary["labels"]) == 10
    phases = ("reference", "baseline", "ensemble", "kd_baseline", "control")
    for phase in (*phases, "student"):
        results = written(summary[phase])
        assert summary[phase]["accuracy"] == results["accuracy"]
        assert results["labels"] == summary["labels"]
        assert results["n_clips"] == written(summary["baseline"])["n_clips"]
    baseline_matrix = written(summary["baseline"])["confusion_matrix"]
    assert len(summary["specialists"]) == 2
    for spec in summary["specialists"]:
        results = written(spec)
        assert spec["accuracy"] == results["accuracy"]
        assert spec["pair_errors"] == pair_errors(
            results["confusion_matrix"], summary["labels"], spec["pair"]
        )
        assert spec["baseline_pair_errors"] == pair_errors(
            baseline_matrix, summary["labels"], spec["pair"]
        )
    assert (out / "confusion_matrices.png").stat().st_size
    assert set(summary["phase_seconds"]) >= {
        "baseline",
        "reference",
        "ensemble",
        "distill",
    }
    # Each model's size: the student's is that of its loaded modules, the
    # ensemble's that of all its teachers together.
    from speechbrain_kd.checkpoints import load_trained_model

    def parameters(entry):
        model = load_trained_model(entry["output_folder"])
        modules = (model.embedding_model, model.classifier)
        return sum(p.numel() for m in modules for p in m.parameters())

    for entry in (summary["student"], *summary["specialists"]):
        assert entry["complexity"]["parameters"] == parameters(entry)
        assert entry["complexity"]["macs"] > 0
    teachers = [summary["baseline"], *summary["specialists"]]
    assert summary["ensemble"]["complexity"]["parameters"] == sum(
        map(parameters, teachers)
    )
    assert summary["ensemble"]["complexity"]["macs"] == sum(
        t["complexity"]["macs"] for t in teachers
    )
    # The table printed holds the same numbers.
    row = "linear reference (log-mel statistics)"
    reference = 100 * summary["reference"]["accuracy"]
    assert f"{row:<40} {reference:>13.2f}%" in pipeline_run["stdout"]


def test_controls_are_the_student_without_its_teachers(pipeline_run):
    """kd_baseline: the student's settings and start, the baseline as its
    only teacher; control: the same with the true labels alone. Both are
    rows of the summary, the printed table and the comparisons."""
    summary = pipeline_run["summary"]

    def overrides(name):
        folder = Path(summary[name]["output_folder"])
        stamp = json.loads((folder / "pipeline_phase.json").read_text())
        return stamp["settings"]["overrides"]

    student, kd_baseline, control = map(
        overrides, ("student", "kd_baseline", "control")
    )
    baseline = summary["baseline"]["output_folder"]
    assert student["hard_label_weight"] == 0.5  # the demo preset's
    assert len(student["teacher_folders"]) == 3
    assert kd_baseline["teacher_folders"] == [baseline]
    assert control["hard_label_weight"] == 1.0
    for run in (kd_baseline, control):
        assert run["init_from"] == student["init_from"] == baseline
        differs = {k for k in run if run[k] != student[k]}
        assert differs <= {
            "output_folder",
            "teacher_folders",
            "hard_label_weight",
        }
    assert kd_baseline["hard_label_weight"] == 0.5
    for name, row in (
        ("kd_baseline", "kd_baseline (from the baseline alone)"),
        ("control", "control (true labels only)"),
    ):
        accuracy = 100 * summary[name]["accuracy"]
        assert f"{row:<40} {accuracy:>13.2f}%" in pipeline_run["stdout"]
        comparison = summary["comparisons"][f"student_vs_{name}"]
        assert comparison["difference"] == pytest.approx(
            100 * (summary["student"]["accuracy"] - summary[name]["accuracy"])
        )


def test_pipeline_exports_and_verifies_the_student(pipeline_run, tiny_demo):
    """--export_formats as the last step: the finished phases are skipped,
    the student is exported and verified on the test clips, its figures in
    summary.json; a student over --max_model_bytes is refused with its
    measured size and leaves no export behind."""
    out = pipeline_run["folder"]
    again = ["--controls=True", "--export_formats=onnx,int8"]
    too_small = run_script(
        pipeline_args(tiny_demo, out, *again, "--max_model_bytes=1000"),
        check=False,
    )
    assert too_small.returncode != 0
    last = too_small.stderr.strip().splitlines()[-1]
    assert last.startswith("[pipeline] export: ") and "1000" in last
    assert not (out / "export").exists()
    result = run_script(pipeline_args(tiny_demo, out, *again))
    assert "distill: complete, skipped" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    export = summary["export"]
    assert export["folder"] == str(out / "export")
    assert set(export["formats"]) == {"onnx", "int8"}
    assert export["formats"]["onnx"]["agreement"] == 1.0
    assert export["formats"]["int8"]["agreement"] >= 0.97
    for figures in export["formats"].values():
        assert (out / "export" / figures["file"]).is_file()
    assert summary["student"] == pipeline_run["summary"]["student"]


def test_linear_reference_learns_the_scenes(pipeline_run):
    # Ten balanced scenes (chance 10 %) in seven groups that differ in
    # their spectra (the three pairs differ only in time-frequency cues):
    # a linear model on band statistics reaches at most about 70 %.
    assert pipeline_run["summary"]["reference"]["accuracy"] >= 0.35


def test_baseline_beats_chance(pipeline_run):
    # Ten balanced scenes: chance is 10 %.
    assert pipeline_run["summary"]["baseline"]["accuracy"] >= 0.3


def test_confusing_pairs_come_from_validation(pipeline_run):
    baseline = pipeline_run["folder"] / "baseline"
    pairs = json.loads((baseline / "confusing_pairs.json").read_text())
    assert "valid_results.json" in pairs["source"]
    spec_pairs = [s["pair"] for s in pipeline_run["summary"]["specialists"]]
    assert [p["pair"] for p in pairs["pairs"][:2]] == spec_pairs


def test_rerun_skips_complete_phases(pipeline_run, tiny_demo):
    result = run_script(pipeline_args(tiny_demo, pipeline_run["folder"]))
    assert result.stdout.count("complete, skipped") == 5


def test_changed_settings_are_refused(pipeline_run, tiny_demo):
    result = run_script(
        pipeline_args(tiny_demo, pipeline_run["folder"], "--lr=0.5"),
        check=False,
    )
    assert result.returncode != 0
    assert "holds a finished baseline made with other settings" in (
        result.stderr
    )


def test_output_folder_through_a_symbolic_link_is_the_same_run(
    pipeline_run, tiny_demo, tmp_path
):
    link = tmp_path / "link"
    link.symlink_to(pipeline_run["folder"], target_is_directory=True)
    result = run_script(pipeline_args(tiny_demo, link))
    assert result.stdout.count("complete, skipped") == 5


def test_interrupted_phase_with_other_settings_is_refused(tiny_demo, tmp_path):
    out = tmp_path / "out"
    # A phase that stops part-way (here: on its first clip).
    failing = pipeline_args(tiny_demo, out, "--n_channels=3")
    assert run_script(failing, check=False).returncode == 1
    assert not (out / "baseline" / "test_results.json").exists()
    result = run_script(pipeline_args(tiny_demo, out, "--lr=0.5"), check=False)
    assert result.returncode != 0
    assert "holds an interrupted baseline made with other settings" in (
        result.stderr
    )
    assert "n_channels: 3 then, None now" in result.stderr
    assert "lr: " in result.stderr and "0.5 now" in result.stderr
    # The same settings again: resumed (here it fails the same way).
    again = run_script(failing, check=False)
    assert again.returncode == 1 and "other settings" not in again.stderr
    assert "3 channels" in again.stdout + again.stderr


def test_specialist_trains_on_half_pair_batches(pipeline_run, tmp_path):
    """The batches the specialist's Brain receives, counted in its loop.

    The pair is 2 of the 10 scenes: shuffled batches would hold about a
    fifth of its clips, the paper's pair-focused batches half.
    """
    from tests.conftest import RECIPE

    spec = pipeline_run["summary"]["specialists"][0]
    stamp = Path(spec["output_folder"]) / "pipeline_phase.json"
    overrides = json.loads(stamp.read_text())["settings"]["overrides"]
    overrides.update(output_folder=str(tmp_path / "spec"), number_of_epochs=1)
    record = tmp_path / "batches"
    run_script(
        [
            "-c",
            RECORD_TRAINING_BATCHES,
            record,
            RECIPE / "train.py",
            RECIPE / "hparams" / "specialist.yaml",
            *(f"--{k}={json.dumps(v)}" for k, v in overrides.items()),
        ]
    )
    batches = json.loads((tmp_path / "batches.0.json").read_text())
    assert batches
    pair = set(spec["pair"])
    for ids in batches:
        # Clip IDs are TAU file names: "<scene>-<city>-<location>-...".
        in_pair = sum(clip.split("-")[0] in pair for clip in ids)
        assert in_pair == len(ids) // 2, (in_pair, len(ids))


def test_pairs_by_hand_then_one_specialist_per_pair(pipeline_run, tmp_path):
    """``find_confusing_pairs.py --pairs``, then specialist.yaml without
    ``target_pair``: one command trains one specialist per listed pair."""
    import shutil

    from tests.conftest import RECIPE

    baseline = tmp_path / "baseline"
    shutil.copytree(pipeline_run["folder"] / "baseline", baseline)
    run_script(
        [
            RECIPE / "find_confusing_pairs.py",
            baseline,
            "--pairs",
            "tram,metro;airport,shopping_mall",
        ]
    )
    listed = json.loads((baseline / "confusing_pairs.json").read_text())
    # In the given order; each pair in the order of the labels.
    assert [p["pair"] for p in listed["pairs"]] == [
        ["metro", "tram"],
        ["airport", "shopping_mall"],
    ]
    spec = pipeline_run["summary"]["specialists"][0]
    stamp = Path(spec["output_folder"]) / "pipeline_phase.json"
    overrides = json.loads(stamp.read_text())["settings"]["overrides"]
    overrides.pop("target_pair")
    overrides.update(
        output_folder=str(tmp_path / "specialists"),
        init_from=str(baseline),
        number_of_epochs=1,
    )
    run_script(
        [
            RECIPE / "train.py",
            RECIPE / "hparams" / "specialist.yaml",
            *(f"--{k}={json.dumps(v)}" for k, v in overrides.items()),
        ]
    )
    for pair in (["metro", "tram"], ["airport", "shopping_mall"]):
        folder = tmp_path / "specialists" / "-".join(pair)
        results = json.loads((folder / "test_results.json").read_text())
        assert list(results["pair_errors"]) == ["/".join(pair)]


def test_exported_student_predicts_like_the_recipe(pipeline_run, tmp_path):
    from speechbrain_kd.export import export_model
    from speechbrain_kd.speechbrain_folder import verify_export

    student = pipeline_run["folder"] / "student"
    export = export_model(student, tmp_path / "student_export")
    report = verify_export(
        export,
        student / "test_predictions.csv",
        pipeline_run["folder"] / "manifests" / "test.csv",
        limit=40,
    )
    assert report["n_clips"] == 40 and report["label_mismatches"] == []
    assert report["posterior_mismatches"] == []


# Four scenes whose names are not DCASE scenes: the label set comes from
# the data, and teachers of one model family teach a student of the other.
OTHER_SCENES = {
    "airport": "concourse",
    "shopping_mall": "arcade",
    "park": "meadow",
    "bus": "coach",
}


@pytest.fixture(scope="module")
def other_labels_mixed_families(tiny_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("other_labels")
    data = relabelled_copy(tiny_demo, root / "data", OTHER_SCENES)
    out = root / "out"
    result = run_script(
        pipeline_args(
            data, out, "--model=logmel_cnn", "--student_model=raw_waveform_cnn"
        )
    )
    summary = json.loads((out / "summary.json").read_text())
    return {"folder": out, "summary": summary, "stdout": result.stdout}


def test_label_set_comes_from_the_data(other_labels_mixed_families):
    run = other_labels_mixed_families
    labels = sorted(OTHER_SCENES.values())
    assert run["summary"]["labels"] == labels
    for phase in ("baseline", "student"):
        spec = json.loads(
            (run["folder"] / phase / "save" / "model_spec.json").read_text()
        )
        assert spec["labels"] == labels
        assert spec["classifier"]["config"]["n_classes"] == 4
    for spec in run["summary"]["specialists"]:
        assert set(spec["pair"]) <= set(labels)
    # Four balanced scenes: chance is 25 %.
    assert run["summary"]["baseline"]["accuracy"] > 0.4


def test_teachers_of_one_family_teach_a_student_of_the_other(
    other_labels_mixed_families,
):
    run = other_labels_mixed_families
    classes = {}
    for phase in (
        "baseline",
        "student",
        *(
            f"specialists/{'-'.join(s['pair'])}"
            for s in run["summary"]["specialists"]
        ),
    ):
        spec = json.loads(
            (run["folder"] / phase / "save" / "model_spec.json").read_text()
        )
        classes[phase] = spec["embedding_model"]["class"].rpartition(".")[2]
    assert classes.pop("student") == "RawWaveformCNN"
    assert set(classes.values()) == {"LogMelCNN"}
    assert "starts from scratch" in run["stdout"]
    assert run["summary"]["student"]["accuracy"] > 0.4


def test_a_failing_phase_shows_its_own_error(tiny_demo, tmp_path):
    result = run_script(
        pipeline_args(tiny_demo, tmp_path / "out", "--n_classes=7"),
        check=False,
    )
    assert result.returncode == 1
    assert "n_classes=7 was asked for" in result.stderr
    assert "[pipeline] baseline failed" in result.stderr
    assert f"its log: {tmp_path / 'out' / 'baseline' / 'log.txt'}" in (
        result.stderr
    )
    # A setting the data contradicts is one line: no traceback anywhere.
    assert "Traceback" not in result.stdout + result.stderr
    assert "CalledProcessError" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "option, message",
    [
        ("--numbr_of_epochs=3", "did you mean 'number_of_epochs'"),
        ("--model=cnn14", "unknown model family 'cnn14'"),
        ("--student_model=cnn14", "unknown model family 'cnn14'"),
        (
            "--model_options={block_channels: [8]}",
            "has no setting 'block_channels'",
        ),
        ("--export_formats=tflite", "unknown export format(s) ['tflite']"),
        ("--max_model_bytes=128000", "give --export_formats too"),
        ("--ranking_folds=1000", "--ranking_folds=1000: K must be an int"),
    ],
)
def test_bad_pipeline_options_are_refused_before_any_work(
    tiny_demo, tmp_path, option, message
):
    out = tmp_path / "out"
    result = run_script(pipeline_args(tiny_demo, out, option), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "baseline").exists()


def test_pipeline_killed_inside_a_phase_ends_as_if_never_killed(
    pipeline_run, tiny_demo, tmp_path
):
    """SIGKILL to the whole pipeline (and its phase) once the baseline has
    checkpointed, then the same command: every model ends as in the
    uninterrupted run of the same settings (``pipeline_run``)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = [sys.executable, *map(str, pipeline_args(tiny_demo, out))]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    run = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: the phase goes with it
    )
    save = out / "baseline" / "save"
    deadline = time.time() + 600
    while not list(save.glob("CKPT+*")) and run.poll() is None:
        assert time.time() < deadline, "the baseline never checkpointed"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (out / "baseline" / "test_results.json").exists()
    run_script(pipeline_args(tiny_demo, out))
    resumed = json.loads((out / "summary.json").read_text())
    whole = pipeline_run["summary"]
    pairs = [s["pair"] for s in whole["specialists"]]
    assert [s["pair"] for s in resumed["specialists"]] == pairs
    folders = ["baseline", "ensemble", "student"] + [
        f"specialists/{'-'.join(pair)}" for pair in pairs
    ]
    for name in folders:
        ours, theirs = out / name, pipeline_run["folder"] / name
        results = [
            json.loads((f / "test_results.json").read_text())
            for f in (ours, theirs)
        ]
        for result in results:
            result.pop("checkpoint", None)
        assert results[0] == results[1], name
        assert (ours / "test_predictions.csv").read_text() == (
            theirs / "test_predictions.csv"
        ).read_text(), name


def test_seeds_run_one_pipeline_each_and_tabulate_them(tiny_demo, tmp_path):
    out = tmp_path / "seeds"
    result = run_script(
        pipeline_args(tiny_demo, out, "--seeds=3,4", "--number_of_epochs=2")
    )
    table = json.loads((out / "seeds_summary.json").read_text())
    assert table["seeds"] == [3, 4]
    runs = [
        json.loads((out / f"seed_{seed}" / "summary.json").read_text())
        for seed in (3, 4)
    ]
    for name in ("reference", "baseline", "ensemble", "student"):
        values = [run[name]["accuracy"] for run in runs]
        assert table["models"][name]["values"] == values
        assert abs(table["models"][name]["mean"] - sum(values) / 2) < 1e-9
    # Each seed is its own run: its phases were told their seed.
    for seed in (3, 4):
        stamp = out / f"seed_{seed}" / "baseline" / "pipeline_phase.json"
        overrides = json.loads(stamp.read_text())["settings"]["overrides"]
        assert overrides["seed"] == seed
    assert "| baseline |" in (out / "seeds_table.md").read_text()
    # The paired comparisons, pooled over the seeds and of each seed,
    # written, tabulated and printed.
    from speechbrain_kd.comparisons import comparisons_table

    check_comparisons(table, runs, (3, 4))
    pooled = comparisons_table(table["comparisons"])
    assert pooled in (out / "seeds_table.md").read_text()
    assert pooled in result.stdout
    for seed, run in zip((3, 4), runs, strict=True):
        check_comparisons(run, [run], (seed,))
        assert comparisons_table(run["comparisons"]) in result.stdout


def check_comparisons(table, runs, seeds):
    """The paired comparisons of a summary agree with the runs' clips."""
    from scipy import stats

    from speechbrain_kd.comparisons import CLAIMS
    from speechbrain_kd.metrics import read_predictions

    comparisons = table["comparisons"]
    ranks = range(1, len(runs[0]["specialists"]) + 1)
    assert set(comparisons) == {
        f"{first}_vs_{second}"
        for first, second in CLAIMS
        if first in runs[0] and second in runs[0]
    } | {f"specialist_{r}_vs_baseline_pair_errors" for r in ranks}

    def hits(run, name):
        path = Path(run[name]["output_folder"]) / "test_predictions.csv"
        return {c: t == p for c, (t, p) in read_predictions(path).items()}

    for first, second in (("baseline", "reference"), ("student", "ensemble")):
        entry = comparisons[f"{first}_vs_{second}"]
        pairs = []
        for run in runs:
            ones, others = hits(run, first), hits(run, second)
            assert set(ones) == set(others)  # the same test clips
            pairs += [(ones[clip], others[clip]) for clip in ones]
        first_only = sum(a and not b for a, b in pairs)
        second_only = sum(b and not a for a, b in pairs)
        assert entry["seeds"] == list(seeds)
        assert entry["n_clips"] == len(pairs)
        assert entry["difference"] == pytest.approx(
            100 * (first_only - second_only) / len(pairs)
        )
        assert entry["p_value"] == pytest.approx(
            stats.binomtest(first_only, first_only + second_only).pvalue
            if first_only + second_only
            else 1.0
        )
        low, high = entry["ci95"]
        assert low <= entry["difference"] <= high
        assert entry["holds"] == (low > 0 and entry["p_value"] < 0.05)
    for rank in ranks:
        entry = comparisons[f"specialist_{rank}_vs_baseline_pair_errors"]
        specs = [run["specialists"][rank - 1] for run in runs]
        assert entry["errors"] == [
            sum(s["pair_errors"] for s in specs),
            sum(s["baseline_pair_errors"] for s in specs),
        ]


def test_learning_curves_and_pair_ranking_reach_the_summary(pipeline_run):
    from speechbrain_kd.epochs import LEARNING_CURVE
    from speechbrain_kd.pairs import accuracy_outside_pair
    from speechbrain_kd.plots import read_learning_curve

    summary, out = pipeline_run["summary"], pipeline_run["folder"]
    # Every trained phase wrote one curve row per epoch (15: TINY_OVERRIDES).
    trained = ["baseline", "student", "kd_baseline", "control"]
    trained += [s["output_folder"] for s in summary["specialists"]]
    for folder in trained:
        curve = read_learning_curve(out / folder / LEARNING_CURVE)
        assert [int(epoch) for epoch in curve["epoch"]] == list(range(1, 16))
    assert Path(summary["learning_curves"]).is_file()
    pairs = json.loads((out / "baseline" / "confusing_pairs.json").read_text())
    assert summary["pairs"]["ranked_from"] == pairs["ranked_from"]
    assert summary["pairs"]["ranked_from"].startswith("validation split")
    assert summary["pairs"]["chosen"] == [
        s["pair"] for s in summary["specialists"]
    ]
    labels = summary["labels"]
    for spec in summary["specialists"]:
        results = json.loads(
            (Path(spec["output_folder"]) / "test_results.json").read_text()
        )
        assert spec["accuracy_outside_pair"] == accuracy_outside_pair(
            results["confusion_matrix"], labels, spec["pair"]
        )
        assert "outside its pair" in pipeline_run["stdout"]


def test_folds_test_every_clip_once_and_pool_them(tiny_demo, tmp_path):
    from speechbrain_kd.metrics import read_predictions

    out = tmp_path / "folds"
    result = run_script(
        pipeline_args(tiny_demo, out, "--folds=2", "--number_of_epochs=2")
    )
    folds = json.loads((out / "folds" / "folds.json").read_text())["clips"]
    assert set(folds.values()) == {1, 2}
    table = json.loads((out / "folds_summary.json").read_text())
    tested = {}
    for fold in (1, 2):
        summary = json.loads((out / f"fold{fold}" / "summary.json").read_text())
        path = (
            Path(summary["student"]["output_folder"]) / "test_predictions.csv"
        )
        for clip in read_predictions(path):
            assert clip not in tested  # each clip tested by one fold
            tested[clip] = fold
    assert tested == folds  # ... and by the fold it belongs to
    for row in ("reference", "baseline", "ensemble", "student"):
        assert table["models"][row]["n_clips"] == len(folds)
    assert table["comparisons"]["student_vs_ensemble"]["n_clips"] == len(folds)
    text = (out / "folds_table.md").read_text()
    assert "every clip tested once" in text
    assert "pooled over folds" in text and "pooled over seeds" not in text
    # Each rank of specialist has its row: pair errors summed over folds.
    first = [
        json.loads((out / f"fold{f}" / "summary.json").read_text())[
            "specialists"
        ][0]
        for f in (1, 2)
    ]
    errors = sum(s["pair_errors"] for s in first)
    was = sum(s["baseline_pair_errors"] for s in first)
    assert f"| {errors} ({was}) |" in text.split("| specialist 1 (")[1]
    assert "| student |" in result.stdout


def test_pairs_ranked_out_of_fold_see_every_training_clip_and_no_test_clip(
    tiny_demo, tmp_path
):
    from speechbrain_kd.metrics import read_predictions

    out = tmp_path / "ranked"
    result = run_script(
        pipeline_args(
            tiny_demo, out, "--ranking_folds=2", "--number_of_epochs=2"
        )
    )
    manifests = out / "manifests"
    training = set()
    for split in ("train", "valid"):
        rows = (manifests / f"{split}.csv").read_text().splitlines()[1:]
        training |= {row.split(",")[0] for row in rows}
    test_rows = (manifests / "test.csv").read_text().splitlines()[1:]
    test = {row.split(",")[0] for row in test_rows}
    # Each ranking baseline is tested on the training clips it left out.
    ranked = []
    for fold in (1, 2):
        folder = out / "pair_ranking" / f"fold{fold}" / "baseline"
        ranked += list(read_predictions(folder / "test_predictions.csv"))
    assert sorted(ranked) == sorted(training)
    assert not test & set(ranked)
    pairs = json.loads((out / "baseline" / "confusing_pairs.json").read_text())
    source = (
        f"out-of-fold predictions of {len(training)} training clips (2 folds)"
    )
    assert pairs["ranked_from"] == source
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"]["ranked_from"] == source
    assert f"[pairs] {source}" in result.stdout
    assert "baseline:ranking fold 2 of 2" in summary["phase_seconds"]
