"""End to end: every phase of the recipe on a tiny demo set.

These tests train real models (a few minutes in all on 2 CPU cores) and check
what the method promises on data whose answer is known: the synthetic scenes
are learnable, so the baseline beats chance, and the specialists and the
student are judged against the baseline they start from.
"""

import json

import pytest

from tests.conftest import pipeline_args, run_script

pytestmark = pytest.mark.slow


def test_summary_has_every_phase(pipeline_run):
    summary = pipeline_run["summary"]
    assert len(summary["labels"]) == 10
    for phase in ("baseline", "ensemble", "student"):
        assert 0.0 <= summary[phase]["accuracy"] <= 1.0
        folder = summary[phase]["output_folder"]
        assert (pipeline_run["folder"] / folder).exists()
    assert len(summary["specialists"]) == 2
    for spec in summary["specialists"]:
        assert len(spec["pair"]) == 2
        assert set(spec["pair"]) <= set(summary["labels"])
        assert spec["pair_errors"] >= 0
    assert (pipeline_run["folder"] / "confusion_matrices.png").stat().st_size
    assert set(summary["phase_seconds"]) >= {"baseline", "ensemble", "distill"}


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
    assert "other settings" in result.stderr


def test_specialists_cut_errors_in_their_pairs(pipeline_run):
    """Fewer errors inside the target pairs than the baseline makes.

    Counted on the validation split, where the pairs were found (held-out
    locations); the test split of this tiny set has a handful of clips per
    pair, too few to compare models (the README reports the default demo's
    test-split numbers).
    """
    from speechbrain_kd.analysis import pair_errors

    folder = pipeline_run["folder"]
    baseline = json.loads(
        (folder / "baseline" / "valid_results.json").read_text()
    )
    ours = theirs = 0
    for spec in pipeline_run["summary"]["specialists"]:
        valid = json.loads(
            (folder / spec["output_folder"] / "valid_results.json").read_text()
        )
        ours += valid["pair_errors"]["/".join(spec["pair"])]
        theirs += pair_errors(
            baseline["confusion_matrix"], baseline["labels"], spec["pair"]
        )
    assert theirs > 0  # the pairs were chosen for their errors
    assert ours < theirs


def test_exported_student_predicts_like_the_recipe(pipeline_run, tmp_path):
    from speechbrain_kd.export import export_model, verify_export

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
