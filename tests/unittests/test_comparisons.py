"""Paired comparisons: known answers on constructed predictions, refusals."""

import numpy as np
import pytest
from scipy import stats

from speechbrain_kd.comparisons import (
    MIN_CLIPS,
    ClipsDiffer,
    compare_predictions,
    comparisons_table,
    matched_clips,
    paired_difference,
    summary_comparisons,
)
from speechbrain_kd.metrics import (
    confusion_matrix,
    read_predictions,
    write_predictions,
)
from speechbrain_kd.pairs import pair_errors
from tests.conftest import random_predictions

LABELS = ["a", "b", "c", "d"]


def as_predictions(targets, predictions, prefix="clip"):
    return {
        f"{prefix}{k}": (LABELS[t], LABELS[p])
        for k, (t, p) in enumerate(zip(targets, predictions, strict=True))
    }


def test_identical_models_differ_by_nothing():
    targets, predictions = random_predictions(0)
    run = as_predictions(targets, predictions)
    result = compare_predictions({1: run, 2: run}, {1: run, 2: run})
    assert result["difference"] == 0.0
    assert result["ci95"] == [0.0, 0.0]
    assert result["p_value"] == 1.0
    assert result["n_clips"] == 400 and result["seeds"] == [1, 2]
    assert not result["holds"]


@pytest.mark.parametrize("wrong", [1, 5, 12])
def test_one_model_right_wherever_the_other_is_wrong(wrong):
    # Both right on 40 clips; the second wrong on `wrong` more.
    first = [1] * (40 + wrong)
    second = [1] * 40 + [0] * wrong
    result = paired_difference({1: (first, second)})
    expected = stats.binomtest(wrong, wrong, 0.5).pvalue
    assert result["p_value"] == pytest.approx(expected)
    assert result["p_value"] == pytest.approx(min(1.0, 2 * 0.5**wrong))
    assert (result["first_only"], result["second_only"]) == (wrong, 0)
    assert result["difference"] == pytest.approx(100 * wrong / (40 + wrong))
    # The second never beats the first: no resample goes below zero.
    assert result["ci95"][0] >= 0


def test_p_value_counts_only_the_discordant_clips():
    # 15 clips only the first gets right, 5 only the second, 30 both,
    # 10 neither: McNemar on (15, 5), whatever the concordant clips.
    first = [1] * 15 + [0] * 5 + [1] * 30 + [0] * 10
    second = [0] * 15 + [1] * 5 + [1] * 30 + [0] * 10
    result = paired_difference({3: (first, second)})
    assert result["p_value"] == pytest.approx(
        stats.binomtest(15, 20, 0.5).pvalue
    )
    assert result["difference"] == pytest.approx(100 * 10 / 60)
    low, high = result["ci95"]
    assert low < result["difference"] < high


def test_seeds_are_pooled_by_clip_and_resampled_within_each_seed():
    # Seed 1: the first model right on 40 clips the second gets wrong;
    # seed 2: both the same on 20 clips. Pooled: 40 of 60 clips, not the
    # mean of the seeds' differences (50 points). Each seed's differences
    # are constant, so resampling within seeds cannot move the mean; a
    # bootstrap over the pooled clips would.
    result = paired_difference(
        {1: ([1] * 40, [0] * 40), 2: ([1] * 20, [1] * 20)}
    )
    assert result["difference"] == pytest.approx(200 / 3)
    assert result["ci95"] == pytest.approx([200 / 3, 200 / 3])
    assert result["p_value"] == pytest.approx(2 * 0.5**40)
    assert result["holds"]


def test_interval_is_reproducible_and_decides_whether_a_claim_holds():
    rng = np.random.default_rng(0)
    second = rng.integers(0, 2, 200)
    better = np.where(rng.random(200) < 0.3, 1, second)  # clearly better
    slightly = second.copy()
    slightly[np.flatnonzero(second == 0)[:2]] = 1  # two clips better
    clear = paired_difference({1: (better, second)})
    assert clear["ci95"][0] > 0 and clear["holds"]
    # Few resamples: another generator seed would move the interval.
    rough = paired_difference({1: (better, second)}, resamples=20)
    assert rough == paired_difference({1: (better, second)}, resamples=20)
    small = paired_difference({1: (slightly, second)})
    assert small["difference"] == pytest.approx(1.0)
    assert small["ci95"][0] <= 0 < small["ci95"][1]
    assert not small["holds"]  # better on the mean, not beyond doubt
    worse = paired_difference({1: (second, better)})
    assert worse["ci95"][1] < 0 and not worse["holds"]
    # 0.8 points above zero, constant within each seed (8 discordant
    # clips, p = 2 / 2**8): it holds.
    barely = paired_difference(
        {1: ([0] * 992, [0] * 992), 2: ([1] * 8, [0] * 8)}
    )
    assert barely["ci95"] == pytest.approx([0.8, 0.8])
    assert barely["p_value"] == pytest.approx(2 / 2**8)
    assert barely["holds"]
    # Above zero by the interval, not by the exact test: it does not.
    two = paired_difference({1: ([0] * 398, [0] * 398), 2: ([1, 1], [0, 0])})
    assert two["ci95"] == pytest.approx([0.5, 0.5])
    assert two["p_value"] == 0.5 and not two["holds"]


def test_scores_may_be_booleans_and_must_be_there():
    result = paired_difference({1: ([True] * 40, [False] * 40)})
    assert result["difference"] == 100.0
    with pytest.raises(ValueError, match="^no clip to compare$"):
        paired_difference({1: ([], [])})


def test_too_few_clips_give_no_interval():
    ones = [1] * MIN_CLIPS
    zeros = [0] * MIN_CLIPS
    enough = paired_difference({1: (ones, zeros)})
    assert enough["ci95"] == [100.0, 100.0] and "note" not in enough
    few = paired_difference({1: (ones[1:], zeros[1:])})
    assert few["ci95"] is None and not few["holds"]
    assert few["note"] == (
        f"too few clips for a bootstrap interval: {MIN_CLIPS - 1} < {MIN_CLIPS}"
    )
    assert few["p_value"] == pytest.approx(2 * 0.5 ** (MIN_CLIPS - 1))
    one_in_a_seed = paired_difference({1: (ones[1:], zeros[1:]), 2: ([1], [0])})
    assert one_in_a_seed["n_clips"] == MIN_CLIPS
    assert one_in_a_seed["ci95"] is None
    assert one_in_a_seed["note"].endswith(": 1 in a seed")
    two_in_a_seed = paired_difference({1: (ones, zeros), 2: ([1, 1], [0, 0])})
    assert two_in_a_seed["ci95"] == [100.0, 100.0]
    with pytest.raises(ValueError) as error:
        paired_difference({1: (ones, zeros), 2: ([1, 0], [1])})
    assert str(error.value) == (
        "seed 2: (2,) and (1,) scores; give one score per clip to each model"
    )


def test_runs_tested_on_other_clips_are_refused_naming_them():
    targets, predictions = random_predictions(1, n=40)
    run = as_predictions(targets, predictions)
    fewer = dict(list(run.items())[:-2])
    with pytest.raises(ClipsDiffer) as error:
        compare_predictions({1: run}, {1: fewer}, ("baseline", "student"))
    assert str(error.value) == (
        "baseline and student were not tested on the same clips: "
        "2 only in baseline (clip38, clip39)"
    )
    with pytest.raises(ClipsDiffer, match=r"\(clip35, .*, clip39\)$"):
        matched_clips(run, dict(list(run.items())[:-5]))
    with pytest.raises(
        ClipsDiffer, match=r"\(clip34, .*, clip38 and 1 more\)$"
    ):
        matched_clips(run, dict(list(run.items())[:-6]))
    relabelled = dict(run, clip3=("d" if run["clip3"][0] != "d" else "a",) * 2)
    with pytest.raises(ClipsDiffer, match=r"1 with another target \(clip3\)"):
        matched_clips(run, relabelled)
    renamed = as_predictions(targets, predictions, prefix="other")
    with pytest.raises(ClipsDiffer) as error:
        matched_clips(run, renamed, ("reference", "baseline"))
    message = str(error.value)
    assert "40 only in reference (clip0, clip1, clip2, clip3, clip4 and " in (
        message
    )
    assert "35 more); 40 only in baseline (other0, " in message


def test_pair_comparison_counts_only_the_pair_confusions():
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 4, 300)
    baseline = np.where(rng.random(300) < 0.5, targets, rng.integers(0, 4, 300))
    specialist = np.where(np.isin(targets, [0, 1]), targets, baseline)
    specialist[:10] = 2  # errors outside the pair's confusion
    result = compare_predictions(
        {1: as_predictions(targets, specialist)},
        {1: as_predictions(targets, baseline)},
        pairs={1: ["a", "b"]},
    )

    def errors(predictions):
        matrix = confusion_matrix(targets, predictions, 4)
        return pair_errors(matrix, LABELS, ["a", "b"])

    assert result["errors"] == [errors(specialist), errors(baseline)]
    assert result["errors"][0] < result["errors"][1]
    in_pair = int(np.isin(targets, [0, 1]).sum())
    assert result["n_clips"] == in_pair
    assert result["difference"] == pytest.approx(
        100 * (errors(baseline) - errors(specialist)) / in_pair
    )
    assert result["pairs"] == ["a/b"] and result["holds"]


def write_run(folder, name, targets, predictions):
    probs = np.eye(len(LABELS))[predictions]
    ids = [f"clip{k}" for k in range(len(targets))]
    write_predictions(
        folder / name / "test_predictions.csv", ids, targets, probs, LABELS
    )
    return {"output_folder": str(folder / name)}


def test_summaries_compare_the_rows_they_have(tmp_path):
    summaries = {}
    for seed in (1, 2):
        targets, reference = random_predictions(seed, n=60)
        _, baseline = random_predictions(seed + 10, n=60)
        baseline = np.where(targets < 2, targets, baseline)
        folder = tmp_path / f"seed_{seed}"
        row = {
            name: write_run(folder, name, targets, predicted)
            for name, predicted in (
                ("reference", reference),
                ("baseline", baseline),
                ("ensemble", baseline),
                ("student", targets),
            )
        }
        row["specialists"] = [
            {**write_run(folder, "spec", targets, targets), "pair": ["a", "b"]}
        ]
        if seed == 2:  # a control row and a second specialist in one seed
            row["control"] = write_run(folder, "control", targets, baseline)
            row["specialists"].append(
                {**write_run(folder, "spec2", targets, baseline), "pair": "cd"}
            )
        summaries[seed] = row
    result = summary_comparisons(summaries)
    assert list(result) == [
        "baseline_vs_reference",
        "ensemble_vs_baseline",
        "student_vs_ensemble",
        "student_vs_control",
        "specialist_1_vs_baseline_pair_errors",
        "specialist_2_vs_baseline_pair_errors",
    ]
    assert result["student_vs_control"]["seeds"] == [2]
    assert result["specialist_2_vs_baseline_pair_errors"]["seeds"] == [2]
    assert summary_comparisons({}) == {}
    assert result["student_vs_control"]["n_clips"] == 60
    assert result["ensemble_vs_baseline"]["difference"] == 0.0
    accuracy = {
        name: np.mean(
            [
                t == p
                for seed in (1, 2)
                for t, p in read_predictions(
                    tmp_path / f"seed_{seed}" / name / "test_predictions.csv"
                ).values()
            ]
        )
        for name in ("baseline", "student")
    }
    student = result["student_vs_ensemble"]
    assert student["n_clips"] == 120 and student["seeds"] == [1, 2]
    assert student["difference"] == pytest.approx(
        100 * (accuracy["student"] - accuracy["baseline"])
    )
    # The baseline makes no error in the pair a/b: nothing to cut.
    spec = result["specialist_1_vs_baseline_pair_errors"]
    assert spec["errors"] == [0, 0] and spec["pairs"] == ["a/b", "a/b"]
    # A run tested on other clips, and a run without predictions.
    rows = (
        tmp_path / "seed_1" / "student" / "test_predictions.csv"
    ).read_text()
    (tmp_path / "seed_1" / "student" / "test_predictions.csv").write_text(
        rows.replace("clip5,", "clip500,")
    )
    (tmp_path / "seed_2" / "control" / "test_predictions.csv").unlink()
    spec = tmp_path / "seed_1" / "spec" / "test_predictions.csv"
    spec.write_text(spec.read_text().replace("clip7,", "clip700,"))
    refused = summary_comparisons(summaries)
    assert refused["student_vs_ensemble"] == {
        "refused": "student and ensemble were not tested on the same clips: "
        "1 only in student (clip500); 1 only in ensemble (clip5)",
        "seeds": [1, 2],
    }
    assert (
        "control/test_predictions.csv"
        in (refused["student_vs_control"]["refused"])
    )
    assert refused["specialist_1_vs_baseline_pair_errors"]["refused"] == (
        "specialist 1 and baseline were not tested on the same clips: "
        "1 only in specialist 1 (clip700); 1 only in baseline (clip7)"
    )
    table = comparisons_table(refused)
    assert "| student vs ensemble | refused: student and ensemble" in table
    assert "| baseline vs reference | " in table
