"""Running a phase: its failure told by the phase itself, its stamp, and
the SpeechBrain run options the pipeline passes through."""

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pytest

from speechbrain_kd.phase.errors import ERROR_FILE_ENV
from speechbrain_kd.phase_runner import (
    PhaseFailed,
    PhaseRefused,
    PhaseRunner,
    run_step,
)


def python(code):
    """A command that runs ``code`` in a fresh interpreter."""
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_failing_step_reports_the_error_and_log_it_wrote(tmp_path, capfd):
    seen = tmp_path / "seen.txt"
    step = python(f"""
        import json, os, pathlib, sys
        path = os.environ["{ERROR_FILE_ENV}"]
        pathlib.Path({str(seen)!r}).write_text(path)
        print("ValueError: a line of its output, not its error")
        print("epoch 1 done", file=sys.stderr)
        json.dump({{"error": "n_classes=7 was asked for", "log": "/r/log.txt"}},
                  open(path, "w"))
        sys.exit(3)
    """)
    with pytest.raises(PhaseFailed) as failure:
        run_step("baseline", step)
    assert str(failure.value) == (
        "[pipeline] baseline failed (exit code 3): n_classes=7 was asked for"
        "\n  its log: /r/log.txt"
    )
    # A fresh file, read then removed.
    assert not Path(seen.read_text()).exists()
    # Its output reached the console as it came.
    out, err = capfd.readouterr()
    assert "a line of its output" in out and "epoch 1 done" in err


def test_a_report_without_a_log_names_none(tmp_path):
    step = python(f"""
        import json, os, sys
        json.dump({{"error": "no data", "log": None}},
                  open(os.environ["{ERROR_FILE_ENV}"], "w"))
        sys.exit(1)
    """)
    with pytest.raises(PhaseFailed) as failure:
        run_step("baseline", step)
    assert str(failure.value) == (
        "[pipeline] baseline failed (exit code 1): no data"
    )


def test_a_step_without_a_report_is_known_by_its_last_error_line():
    step = python("""
        import sys
        print("RuntimeError: only its output says so")
        print("Traceback (most recent call last):", file=sys.stderr)
        print("KeyError: 'scene'", file=sys.stderr)
        print("the last line it wrote   \\n\\n", file=sys.stderr)
        sys.exit(2)
    """)
    with pytest.raises(PhaseFailed) as failure:
        run_step("confusing pairs", step)
    assert str(failure.value) == (
        "[pipeline] confusing pairs failed (exit code 2): the last line it "
        "wrote"
    )


def test_a_killed_step_is_known_by_its_exit_code():
    step = python("""
        import os, signal, sys
        print("loading", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    with pytest.raises(PhaseFailed) as failure:
        run_step("student", step)
    assert str(failure.value) == (
        "[pipeline] student failed (exit code -9): loading"
    )
    silent = python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(PhaseFailed, match=r"\(exit code -9\): \(no message\)"):
        run_step("student", silent)


def test_a_step_that_succeeds_leaves_no_report_behind(tmp_path):
    seen = tmp_path / "seen.txt"
    step = python(f"""
        import os, pathlib
        path = os.environ["{ERROR_FILE_ENV}"]
        pathlib.Path({str(seen)!r}).write_text(path)
        pathlib.Path(path).write_text("{{}}")
    """)
    run_step("ok", step)
    assert not Path(seen.read_text()).exists()


# A phase script that records each run and finishes its folder.
PHASE_SCRIPT = """
import json, sys
settings = dict(arg[2:].split("=", 1) for arg in sys.argv[2:])
folder = json.loads(settings["output_folder"])
with open(folder + "/runs.txt", "a") as f:
    f.write(" ".join(sys.argv[2:]) + "\\n")
open(folder + "/test_results.json", "w").write("{}")
"""


@pytest.fixture
def phase(tmp_path):
    """A runner of a tiny phase, its YAML, its manifest and its folder."""
    (tmp_path / "phase.yaml").write_text(
        "lr: 0.1\noutput_folder: x\ntarget_pair: null\n"
    )
    (tmp_path / "test.csv").write_text("ID,wav\n")
    (tmp_path / "phase.py").write_text(PHASE_SCRIPT)
    (tmp_path / "out").mkdir()
    runner = PhaseRunner(tmp_path / "phase.py", [tmp_path / "test.csv"])
    return runner, tmp_path


def runs(folder):
    path = folder / "runs.txt"
    return path.read_text().splitlines() if path.is_file() else []


def test_a_finished_phase_is_skipped_and_other_settings_refused(phase):
    runner, tmp = phase
    overrides = {"output_folder": str(tmp / "out"), "lr": 0.1}
    seconds = runner.run("baseline", tmp / "phase.yaml", overrides)
    assert runner.run("baseline", tmp / "phase.yaml", overrides) == seconds
    assert len(runs(tmp / "out")) == 1
    stamp = json.loads((tmp / "out" / "pipeline_phase.json").read_text())
    assert stamp["seconds"] == seconds
    with pytest.raises(PhaseRefused) as refusal:
        runner.run("baseline", tmp / "phase.yaml", dict(overrides, lr=0.2))
    assert "holds a finished baseline made with other settings" in str(
        refusal.value
    )
    assert "(lr: 0.1 then, 0.2 now)" in str(refusal.value)
    assert len(runs(tmp / "out")) == 1


def test_a_phase_whose_inputs_changed_runs_again(phase, capsys):
    runner, tmp = phase
    overrides = {"output_folder": str(tmp / "out")}
    runner.run("baseline", tmp / "phase.yaml", overrides)
    (tmp / "test.csv").write_text("ID,wav,duration\n")
    runner.run("baseline", tmp / "phase.yaml", overrides)
    assert "baseline: its inputs changed since it ran (the data " in (
        capsys.readouterr().out
    )
    # Cleared, then trained again: the folder holds the second run only.
    assert len(runs(tmp / "out")) == 1
    stamp = json.loads((tmp / "out" / "pipeline_phase.json").read_text())
    assert stamp["seconds"] is not None


def test_wiring_is_an_input_not_a_setting(phase):
    runner, tmp = phase
    overrides = {"output_folder": str(tmp / "out"), "target_pair": ["a", "b"]}
    yaml_file = tmp / "phase.yaml"
    runner.run("specialist", yaml_file, overrides, wiring=["target_pair"])
    other = dict(overrides, target_pair=["a", "c"])
    runner.run("specialist", yaml_file, other, wiring=["target_pair"])
    assert len(runs(tmp / "out")) == 1
    with pytest.raises(PhaseRefused, match="target_pair"):
        runner.run("specialist", yaml_file, other)


def test_speechbrain_run_options_reach_every_phase(tmp_path):
    from pipeline import Pipeline

    from speechbrain_kd.pipeline_options import parse_extra

    overrides, run_opts = parse_extra(
        ["--max_grad_norm=5", "--test_only", "--number_of_epochs=2"]
    )
    assert overrides == {"number_of_epochs": 2}
    assert run_opts == ["--max_grad_norm=5", "--test_only"]
    args = argparse.Namespace(
        output_folder=str(tmp_path / "pipeline"),
        data_folder=str(tmp_path),
        preset="demo",
        student_model=None,
        student_model_options=None,
    )
    pipeline = Pipeline(args, overrides, run_opts)  # not refused
    command = pipeline.phases.command("baseline.yaml", {"lr": 0.1})
    assert command[-3:] == ["--lr=0.1", "--max_grad_norm=5", "--test_only"]
