"""Results always match their inputs: data, teachers and settings.

A finished phase is reused only while its settings, the data it trained
and tested on and the checkpoints it read are those it was made from; a
change reruns it and every phase after it, and a run with other settings
never writes into it (``speechbrain_kd.stamps``). Tiny runs: one epoch, one
specialist.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import RECIPE, pipeline_args, run_script

pytestmark = pytest.mark.slow

PHASES = ["baseline", "specialist", "ensemble", "distill"]


def snapshot(folder, mtimes=False):
    """Every file under ``folder``: its content digest (and mtime)."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns if mtimes else None,
        )
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file() and path.name != ".writer.lock"
    }


def phase_lines(stdout):
    """``{phase: what the pipeline said of it}`` (its first line)."""
    lines = {}
    for line in stdout.splitlines():
        if line.startswith("[pipeline] "):
            name = line[len("[pipeline] ") :].partition(": ")[0]
            lines.setdefault(name, line)
    return lines


def last_line(text):
    """The line a user reads last (empty when there is none)."""
    return (text.strip().splitlines() or [""])[-1]


def remove_clip(data, clip):
    """Take ``clip`` out of ``meta.csv`` and the training fold, as a user
    editing the lists would."""
    for rel in ("meta.csv", "evaluation_setup/fold1_train.csv"):
        path = data / rel
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(clip + "\t")]
        assert len(kept) == len(lines) - 1, rel
        path.write_text("".join(kept))


def test_changed_data_or_teacher_reruns_what_it_reaches(tmp_path):
    from speechbrain_kd.checkpoints import find_best_checkpoint
    from speechbrain_kd.demo_data import generate_demo_dataset
    from speechbrain_kd.stamps import data_fingerprint

    data = tmp_path / "data"
    generate_demo_dataset(
        data, clips_per_scene=8, seconds=2.0, sample_rate=8000, seed=0
    )
    out = tmp_path / "out"
    args = pipeline_args(data, out, "--number_of_epochs=1", "--top_k_pairs=1")
    run_script(args)
    first = json.loads((out / "summary.json").read_text())
    spec = Path(first["specialists"][0]["output_folder"])
    folders = [out / "baseline", spec, out / "ensemble", out / "student"]

    # Unchanged: every phase skipped, every file as it was. A specialist
    # of a pair the ranking no longer gives is kept, named and not used.
    earlier = out / "specialists" / "bus-tram"
    shutil.copytree(spec, earlier)
    before = {f: snapshot(f) for f in [*folders, earlier]}
    said = phase_lines(run_script(args).stdout)
    for phase in PHASES:
        (line,) = [v for k, v in said.items() if k.split(":")[0] == phase]
        assert "complete, skipped" in line, line
    assert {f: snapshot(f) for f in [*folders, earlier]} == before
    assert said["specialists"].startswith("[pipeline] specialists: bus-tram ")
    assert "not used" in said["specialists"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unused_specialists"] == [str(earlier)]
    stamp = json.loads((out / "ensemble" / "pipeline_phase.json").read_text())
    assert stamp["settings"]["overrides"]["teacher_folders"] == [
        str(out / "baseline"),
        str(spec),
    ]
    shutil.rmtree(earlier)

    # Another checkpoint in a teacher's place: the phases that read it run
    # again (ensemble, student), the others stay.
    module = find_best_checkpoint(spec).paramfiles["embedding_model"]
    state = torch.load(module, weights_only=True)
    torch.save(
        {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()},
        module,
    )
    said = phase_lines(run_script(args).stdout)
    assert "complete, skipped" in said["baseline"]
    assert "complete, skipped" in said[f"specialist:{spec.name}"]
    for phase in ("ensemble", "distill"):
        line = said[phase]
        assert line.startswith(f"[pipeline] {phase}: its inputs changed "), line
        assert f"(the checkpoint of {spec}): running it again" in line, line

    # A clip removed from the data: the manifests are rebuilt and every
    # phase runs again; the summary holds the new data's fingerprint, the
    # one every phase's stamp holds.
    clip = "audio/airport-barcelona-0-0-a.wav"
    assert clip in (data / "evaluation_setup" / "fold1_train.csv").read_text()
    remove_clip(data, clip)
    result = run_script(args)
    said = phase_lines(result.stdout)
    assert "complete, skipped" not in result.stdout
    assert (
        "its inputs changed since it ran (the data (train.csv"
        in said["baseline"]
    ), said["baseline"]
    manifests = [out / "manifests" / f"{s}.csv" for s in ("train", "valid")]
    assert not any(Path(clip).stem in m.read_text() for m in manifests)
    summary = json.loads((out / "summary.json").read_text())
    manifests.append(out / "manifests" / "test.csv")
    assert summary["data"] == data_fingerprint(manifests) != first["data"]
    phases = ["baseline", "ensemble", "student"]
    for entry in [summary[p] for p in phases] + summary["specialists"]:
        stamp = Path(entry["output_folder"]) / "pipeline_phase.json"
        inputs = json.loads(stamp.read_text())["inputs"]
        assert inputs["data"] == summary["data"], entry["output_folder"]

    # A teacher whose checkpoints are gone: named in one line.
    spec = Path(summary["specialists"][0]["output_folder"])
    shutil.rmtree(spec / "save")
    result = run_script(args, check=False)
    assert result.returncode == 1
    message = last_line(result.stderr)
    assert message.startswith("[pipeline] ensemble: "), message
    assert f"{spec / 'save'} does not exist" in message
    assert "Traceback" not in result.stderr


def by_hand(data, out, *extra):
    return [
        RECIPE / "train.py",
        RECIPE / "hparams" / "baseline.yaml",
        f"--data_folder={data}",
        f"--output_folder={out}",
        "--sample_rate=8000",
        "--crop_seconds=1.0",
        "--number_of_epochs=1",
        *extra,
    ]


def test_phase_by_hand_with_other_settings_never_overwrites(
    tiny_demo, tmp_path
):
    out = tmp_path / "baseline"
    run_script(by_hand(tiny_demo, out))
    before = snapshot(out, mtimes=True)
    refused = run_script(
        by_hand(tiny_demo, out, "--model=logmel_cnn"), check=False
    )
    assert refused.returncode == 1
    message = last_line(refused.stderr)
    assert message.startswith(
        f"{out} holds a finished baseline made with other settings ("
    ), message
    assert "model: raw_waveform_cnn then, logmel_cnn now" in message
    assert "--overwrite=True" in message
    assert "Traceback" not in refused.stdout + refused.stderr
    assert snapshot(out, mtimes=True) == before

    # Asked for: what the folder held goes, the new model trains afresh.
    run_script(
        by_hand(tiny_demo, out, "--model=logmel_cnn", "--overwrite=True")
    )
    spec = json.loads((out / "save" / "model_spec.json").read_text())
    assert spec["embedding_model"]["class"].endswith("LogMelCNN")
    assert len(list((out / "save").glob("CKPT+*"))) == 1
    record = json.loads((out / "phase_settings.json").read_text())
    assert record["model"] == "logmel_cnn"

    # The pipeline makes the same check before it writes its stamp there.
    before = snapshot(out, mtimes=True)
    result = run_script(pipeline_args(tiny_demo, tmp_path), check=False)
    assert result.returncode == 1
    message = last_line(result.stderr)
    assert message.startswith(
        f"{out} holds a finished baseline made with other settings ("
    ), message
    assert message.endswith("use another --output_folder or delete it")
    assert snapshot(out, mtimes=True) == before
