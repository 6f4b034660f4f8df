"""Bad command-line input: one clear line naming the setting, nothing written.

The data-side battery (empty, truncated and non-audio files, missing
files, scenes and columns, duplicated rows, empty splits, files of another
format) is in ``tests/unittests/test_prepare.py``; caches in
``test_soft_labels.py``; teachers in ``test_teachers.py``.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_kd.demo_data import SCENES
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
        # 1e-3 is a number, as load_hyperpyyaml reads it: the next is named.
        (
            "baseline.yaml",
            ["--lr=1e-3", "--weight_decay=-1"],
            "weight_decay=-1 must be a number >= 0",
        ),
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
def test_teacher_folder_without_checkpoint_is_one_line(
    tiny_demo, tmp_path, yaml
):
    """A phase folder whose training never saved a checkpoint (killed in
    its first epoch, say) is named, before anything is written."""
    from speechbrain_kd.models import SceneClassifier
    from speechbrain_kd.models.spec import write_model_spec

    teacher = tmp_path / "teacher"
    (teacher / "save").mkdir(parents=True)
    model = SceneClassifier(4, 2)
    write_model_spec(
        teacher / "save" / "model_spec.json", model, model, 8000, ["a"]
    )
    extra = [f"--teacher_folders=[{teacher}]"]
    if yaml == "distill.yaml":
        extra.append("--init_from=null")
    out = tmp_path / "out"
    result = run_script(phase(yaml, tiny_demo, out, *extra), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"--teacher_folders: {teacher} holds no trained model (no checkpoint"
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
    assert not out.exists()  # not even an empty folder


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


def test_pipeline_refuses_a_teacher_view_before_training(tiny_demo, tmp_path):
    out = tmp_path / "out"
    args = ["--soft_label_mode=online", "--teacher_view=student_input"]
    result = run_script(pipeline_args(tiny_demo, out, *args), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "set --multi_segment=False" in last, last
    assert "Traceback" not in result.stderr
    assert not (out / "baseline").exists()


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(["a", "b", "c"], id="other-scenes"),
        pytest.param(
            ["tram", *(s for s in SCENES if s != "tram")],
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


@pytest.mark.parametrize(
    "seeds, message",
    [
        ("", "argument --seeds: give one seed or more, e.g. --seeds=1,2,3"),
        ("1,2,1", "argument --seeds: give distinct seeds: 1 is repeated in"),
    ],
)
def test_pipeline_names_what_is_wrong_with_seeds(tmp_path, seeds, message):
    out = tmp_path / "out"
    result = run_script(
        pipeline_args(tmp_path / "data", out, f"--seeds={seeds}"), check=False
    )
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert not out.exists()


def one_line_failure(result):
    """The last line of a failed script, checked to be its only message."""
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def absent_gpu():
    """A device name no machine running the tests has."""
    return f"cuda:{torch.cuda.device_count()}"


@pytest.mark.parametrize("script", ["train.py", "pipeline.py"])
def test_absent_device_is_refused_before_anything_is_written(
    tiny_demo, tmp_path, script
):
    out = tmp_path / "out"
    args = [f"--device={absent_gpu()}"]
    if script == "train.py":
        args = phase("baseline.yaml", tiny_demo, out, *args)
    else:
        args = pipeline_args(tiny_demo, out, *args)
    last = one_line_failure(run_script(args, check=False))
    assert last.startswith(f"--device={absent_gpu()}: this machine has ")
    assert "leave --device out, or give --device=cpu" in last
    # No folder, so no stamp: a rerun without the option starts afresh.
    assert not out.exists()


@pytest.mark.parametrize("script", ["train.py", "pipeline.py"])
def test_output_folder_under_a_file_is_one_line(tiny_demo, tmp_path, script):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    out = blocker / "run"
    if script == "train.py":
        args = phase("baseline.yaml", tiny_demo, out)
    else:
        args = pipeline_args(tiny_demo, out)
    last = one_line_failure(run_script(args, check=False))
    assert last.startswith(f"cannot make the folder {out} (Not a directory)")
    assert last.endswith("choose another --output_folder")


# Started by every Python process of the run (on PYTHONPATH): each
# checkpoint goes to /dev/full, a disk on which every write fails.
FULL_DISK = """
import torch
_save = torch.save
def save(obj, f, *args, **kwargs):
    return _save(obj, "/dev/full", *args, **kwargs)
torch.save = save
"""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("script", ["train.py", "pipeline.py"])
def test_full_disk_is_one_line_naming_the_folder(tiny_demo, tmp_path, script):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FULL_DISK)
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get(
        "PYTHONPATH", ""
    )])  # fmt: skip
    out = tmp_path / "out"
    extra = ["--sample_rate=8000", "--number_of_epochs=1"]
    if script == "train.py":
        args = phase("baseline.yaml", tiny_demo, out, *extra)
    else:
        args = pipeline_args(tiny_demo, out, *extra)
    result = run_script(args, env={"PYTHONPATH": path}, check=False)
    last = one_line_failure(result)
    phase_folder = out if script == "train.py" else out / "baseline"
    seen = (
        f"no space left on the device of {phase_folder}? torch could not "
        "finish writing a file there ("
    )
    if script == "pipeline.py":  # the phase's own line, then its log
        last = result.stderr.strip().splitlines()[-2]
        seen = f"[pipeline] baseline failed (exit code 1): {seen}"
    assert last.startswith(seen)
    assert "free some space there or choose another --output_folder" in last


def editable_copy(source, target):
    """A copy of a demo set: text files copied, audio linked (never edit)."""

    def link_audio(src, dst):
        if src.endswith(".wav"):
            return os.link(src, dst)
        return shutil.copy2(src, dst)

    return Path(shutil.copytree(source, target, copy_function=link_audio))


@pytest.mark.parametrize(
    "fault, script",
    [
        ("scene only in test", "train.py"),
        ("NaN in training", "train.py"),
        ("scene only in test", "pipeline.py"),
    ],
)
def test_bad_data_stops_before_training_with_file_and_line(
    tiny_demo, tmp_path, fault, script
):
    data = editable_copy(tiny_demo, tmp_path / "data")
    setup = data / "evaluation_setup"
    if fault == "scene only in test":
        fold = setup / "fold1_evaluate.csv"
        lines = fold.read_text().splitlines()
        name = lines[5].split("\t")[0]
        lines[5] = f"{name}\tbeach"
        fold.write_text("\n".join(lines) + "\n")
        meta = data / "meta.csv"
        meta.write_text(
            meta.read_text().replace(
                f"{name}\t{name[6:].split('-')[0]}", f"{name}\tbeach"
            )
        )
        seen = (
            f"{fold}, line 6: scene 'beach' of {Path(name).name} has no clip "
            "in the training split"
        )
    else:
        name = (setup / "fold1_train.csv").read_text().splitlines()[3]
        wav = data / name.split("\t")[0]
        samples, rate = soundfile.read(wav, dtype="float32")
        samples[rate // 2, 0] = np.inf
        wav.unlink()  # a new file: the fixture's is linked
        soundfile.write(wav, samples, rate, subtype="FLOAT")
        seen = f"{wav}: 1 frame(s) of NaN or infinite samples, the first at"
    out = tmp_path / "out"
    if script == "train.py":
        args = phase("baseline.yaml", data, out, "--sample_rate=8000")
    else:
        args = pipeline_args(data, out)
    result = run_script(args, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "data preparation: 1 " in result.stderr
    assert seen in result.stderr
    if script == "pipeline.py":  # before any phase; the fault named last
        lines = result.stderr.strip().splitlines()
        assert lines[-1].strip() == seen
        assert lines[-2].startswith("[pipeline] data preparation: 1 clip(s)")
        out = out / "baseline"
    assert not list(out.glob("**/CKPT*"))  # nothing trained
    assert not list(out.parent.glob("**/train.csv"))  # no manifests
