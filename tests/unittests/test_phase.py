"""The library's phase: its settings checks and how a failed phase reports.

A phase that fails writes ``{"error", "log"}`` to the file named by
``SPEECHBRAIN_KD_ERROR_FILE`` (the pipeline reads it instead of parsing
the phase's output); a teacher or ``init_from`` folder without a trained
model is one line naming it, before anything is written.
"""

import json

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_kd.checkpoints import MODEL_SPEC_FILE
from speechbrain_kd.hparams_preview import SettingError
from speechbrain_kd.models import SceneClassifier
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.phase import (
    ERROR_FILE_ENV,
    ErrorReport,
    PhaseTask,
    phase_main,
    phase_settings,
)

TASK = PhaseTask("label", prepare=print)


def finished_phase_folder(folder, checkpoint=True):
    """A phase output folder with a model spec, and a checkpoint or none."""
    (folder / "save").mkdir(parents=True)
    classifier = SceneClassifier(4, 2)
    write_model_spec(
        folder / "save" / MODEL_SPEC_FILE, classifier, classifier, 8000, ["a"]
    )
    if checkpoint:
        Checkpointer(
            folder / "save", {"m": torch.nn.Linear(1, 1)}
        ).save_checkpoint(meta={"accuracy": 0.5})
    return folder


@pytest.fixture
def phase_yaml(tmp_path):
    path = tmp_path / "phase.yaml"
    path.write_text(
        "output_folder: !PLACEHOLDER\n"
        "lr: 0.1\n"
        "init_from: null\n"
        "teacher_folders: []\n"
    )
    return path


@pytest.mark.parametrize("setting", ["teacher_folders", "init_from"])
def test_phase_folder_without_checkpoint_is_named(
    tmp_path, phase_yaml, setting
):
    empty = finished_phase_folder(tmp_path / "teacher", checkpoint=False)
    value = [str(empty)] if setting == "teacher_folders" else str(empty)
    overrides = {"output_folder": str(tmp_path / "out"), setting: value}
    with pytest.raises(SettingError) as error:
        phase_settings(phase_yaml, overrides, TASK)
    message = str(error.value)
    assert message.startswith(f"--{setting}: {empty} holds no trained model")
    assert "\n" not in message
    trained = finished_phase_folder(tmp_path / "trained")
    value = [str(trained)] if setting == "teacher_folders" else str(trained)
    phase_settings(phase_yaml, dict(overrides, **{setting: value}), TASK)


def test_user_error_is_one_line_and_written_to_the_error_file(
    tmp_path, phase_yaml, monkeypatch, capsys
):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv(ERROR_FILE_ENV, str(error_file))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as ended:
        phase_main([str(phase_yaml), f"--output_folder={out}", "--lt=1"], TASK)
    line = ended.value.code
    assert line.startswith("--lt: 'lt' is not a setting of ")
    assert json.loads(error_file.read_text()) == {"error": line, "log": None}
    assert not out.exists()


def test_command_line_that_is_not_yaml_is_reported(
    tmp_path, phase_yaml, monkeypatch
):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv(ERROR_FILE_ENV, str(error_file))
    with pytest.raises(SystemExit) as ended:
        phase_main([str(phase_yaml), "--lr=[1, 2"], TASK)
    assert ended.value.code.startswith("the command-line settings are not")
    assert json.loads(error_file.read_text())["error"] == ended.value.code


def test_unexpected_error_is_written_with_its_type_and_log(tmp_path):
    error_file = tmp_path / "error.json"
    log = tmp_path / "log.txt"
    log.write_text("started\n")
    with pytest.raises(RuntimeError), ErrorReport(error_file) as report:
        report.log = log
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
    assert json.loads(error_file.read_text()) == {
        "error": "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB",
        "log": str(log),
    }


@pytest.mark.parametrize("ending", [None, 0])
def test_a_phase_that_ends_well_writes_no_error(tmp_path, ending):
    error_file = tmp_path / "error.json"
    if ending is None:
        with ErrorReport(error_file):
            pass
    else:
        with pytest.raises(SystemExit), ErrorReport(error_file):
            raise SystemExit(ending)
    assert not error_file.exists()


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(ERROR_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit), ErrorReport():
        raise SystemExit("--lr=-1 must be a number > 0")
    assert list(tmp_path.iterdir()) == []
