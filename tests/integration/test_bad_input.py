"""Bad command-line input: one clear line naming the setting, nothing written.

The data-side battery (empty, truncated and non-audio files, missing
files, scenes and columns, duplicated rows, empty splits, files of another
format) is in ``tests/unittests/test_prepare.py``; caches in
``test_soft_labels.py``; teachers in ``test_teachers.py``.
"""

import numpy as np
import pytest

from tests.conftest import RECIPE, pipeline_args, run_script

pytestmark = pytest.mark.slow


def phase(yaml, data, out, *extra):
    return [
        RECIPE / "train.py",
        RECIPE / "hparams" / yaml,
        f"--data_folder={data}",
        f"--output_folder={out}",
        *extra,
    ]


@pytest.mark.parametrize(
    "yaml, extra, message",
    [
        (
            "baseline.yaml",
            ["--number_of_epochs=abc"],
            "number_of_epochs='abc' must be an integer, at least 1",
        ),
        ("baseline.yaml", ["--lr=-1"], "lr=-1 must be a number > 0"),
        ("baseline.yaml", ["--batch_size=0"], "batch_size=0 must be"),
        ("baseline.yaml", ["--valid_ratio=1.5"], "valid_ratio=1.5 must be"),
        ("baseline.yaml", ["--num_workers=many"], "num_workers='many'"),
        (
            "baseline.yaml",
            ["--numbr_of_epochs=3"],
            "--numbr_of_epochs: 'numbr_of_epochs' is not a setting of "
            f"{RECIPE / 'hparams' / 'baseline.yaml'}; did you mean "
            "'number_of_epochs'?",
        ),
        (
            "specialist.yaml",
            ["--init_from=/tmp", "--target_pair=[metro, tram"],
            "the command-line settings are not YAML (while parsing a flow "
            "sequence",
        ),
        (
            "ensemble.yaml",
            ["--teacher_folders=[/nowhere/baseline]"],
            "--teacher_folders: teacher /nowhere/baseline does not exist: "
            "looked for a phase output folder (save/model_spec.json), an "
            "inference folder (hyperparams.yaml), stored logits (.npz) or "
            "a hub id (owner/name)",
        ),
        (
            "specialist.yaml",
            ["--init_from=/nowhere/baseline"],
            "--init_from: /nowhere/baseline is not the output folder",
        ),
        (
            "specialist.yaml",
            ["--init_from=/nowhere/baseline", "--target_pair=[park, mall]"],
            "--target_pair: ['mall'] not among the scenes of ",
        ),
        (
            "distill.yaml",
            ["--init_from=null"],
            "--teacher_folders is required by ",
        ),
        (
            "distill.yaml",
            [
                "--teacher_folders=[/nowhere/baseline]",
                "--init_from=null",
                "--max_params=128000",
            ],
            "--max_params=128000: the student has 636,736 parameters, "
            "508,736 over the limit",
        ),
        (
            "distill.yaml",
            [
                "--teacher_folders=[/nowhere/baseline]",
                "--init_from=null",
                "--max_macs=30000000",
            ],
            "--max_macs=30000000: the student has 356,",
        ),
        (
            "distill.yaml",
            [
                "--teacher_folders=[/nowhere/baseline]",
                "--init_from=null",
                "--max_params=-5",
            ],
            "--max_params=-5: give a positive whole number",
        ),
    ],
)
def test_bad_setting_is_one_line_and_writes_nothing(
    tiny_demo, tmp_path, yaml, extra, message
):
    out = tmp_path / "out"
    result = run_script(phase(yaml, tiny_demo, out, *extra), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert message in last
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_hub_teacher_without_network_or_cache_is_one_line(tiny_demo, tmp_path):
    out = tmp_path / "out"
    args = ["--teacher_folders=[nobody/no-such-model]", "--init_from=null"]
    result = run_script(
        phase("distill.yaml", tiny_demo, out, *args),
        env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")},
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "--teacher_folders: teacher nobody/no-such-model: not a local path, "
        "and as a Hugging Face hub id it cannot be fetched (HF_HUB_OFFLINE "
        "is set: the Hugging Face Hub is off limits) nor found in the local "
        f"cache {tmp_path / 'hf'}"
    )
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("yaml", ["distill.yaml", "ensemble.yaml"])
def test_teacher_with_other_labels_is_one_line(tiny_demo, tmp_path, yaml):
    stored = tmp_path / "other.npz"
    np.savez(stored, clip=np.zeros(2), __labels__=np.array(["a", "b"]))
    extra = [f"--teacher_folders=[{stored}]"]
    if yaml == "distill.yaml":
        extra.append("--init_from=null")
    result = run_script(
        phase(yaml, tiny_demo, tmp_path / "out", *extra), check=False
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert str(stored) in last and "['a', 'b']" in last
    assert "Traceback" not in result.stderr


def test_pipeline_refuses_a_bad_value_before_any_phase(tiny_demo, tmp_path):
    out = tmp_path / "out"
    result = run_script(
        pipeline_args(tiny_demo, out, "--number_of_epochs=0"), check=False
    )
    assert result.returncode == 1
    assert "number_of_epochs=0 must be an integer, at least 1" in (
        result.stderr
    )
    assert not (out / "baseline").exists()


def test_pipeline_refuses_a_student_over_the_limit_before_training(
    tiny_demo, tmp_path
):
    out = tmp_path / "out"
    result = run_script(
        pipeline_args(tiny_demo, out, "--max_params=20000"), check=False
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "--max_params=20000: the student has 28," in last
    assert "Traceback" not in result.stderr
    assert not (out / "baseline").exists()


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(["a", "b", "c"], id="other-scenes"),
        pytest.param(
            [
                "tram",
                "airport",
                "bus",
                "metro",
                "metro_station",
                "park",
                "public_square",
                "shopping_mall",
                "street_pedestrian",
                "street_traffic",
            ],
            id="same-scenes-other-order",
        ),
    ],
)
def test_ensemble_refuses_teachers_of_another_label_order(
    tiny_demo, tmp_path, labels
):
    from tests.unittests.test_teachers import make_phase

    teacher = make_phase(tmp_path / "teacher", seed=0, labels=labels)
    result = run_script(
        phase(
            "ensemble.yaml",
            tiny_demo,
            tmp_path / "ensemble",
            "--sample_rate=8000",
            f"--teacher_folders=[{teacher}]",
        ),
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"the teachers ({teacher}) have the labels {labels}" in output
    assert not (tmp_path / "ensemble" / "test_results.json").exists()
