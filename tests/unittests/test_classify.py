"""The command-line classifier on phase folders and exported folders."""

import json
import subprocess
import sys

import pytest
import torch

from speechbrain_kd.audio import load_audio
from speechbrain_kd.checkpoints import load_trained_model
from speechbrain_kd.classify import Classifier, audio_files
from speechbrain_kd.classify import main as classify_main
from speechbrain_kd.export import export_model
from tests.unittests.test_export import LABELS, RATE, make_phase, write_clips


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    phase = make_phase(tmp_path / "phase")
    return phase, export_model(phase, tmp_path / "export")


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    write_clips(
        folder,
        {"stereo": (2, RATE), "mono": (1, RATE), "cd_rate": (2, 44100)},
    )
    (folder / "notes.txt").write_text("not audio")
    write_clips(folder / "sub", {"four": (4, RATE)}, seed=1)
    return folder


def run_json(args, capsys):
    assert classify_main([*map(str, args), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_phase_and_export_agree_with_the_trained_model(models, clips, capsys):
    phase, export = models
    files = audio_files([clips])
    assert [p.name for p in files] == [
        "cd_rate.wav",
        "mono.wav",
        "stereo.wav",
        "four.wav",
    ]
    from_phase = run_json([phase, clips, "--top_k", "3"], capsys)
    from_export = run_json([export, clips, "--top_k", "3"], capsys)
    trained = load_trained_model(phase)
    for path, a, b in zip(files, from_phase, from_export, strict=True):
        assert a["file"] == b["file"] == str(path)
        with torch.no_grad():
            probs = torch.softmax(trained(load_audio(path, RATE, 2)[None]), -1)
        assert a["label"] == b["label"] == LABELS[int(probs.argmax())]
        assert list(a["probabilities"]) == list(b["probabilities"])
        expected = sorted(probs[0].tolist(), reverse=True)
        atol = 1e-3 if path.name == "cd_rate.wav" else 1e-5
        for got in (a, b):
            assert list(got["probabilities"].values()) == pytest.approx(
                expected, abs=atol
            )


def test_top_k_and_text_output(models, clips, capsys):
    phase, _ = models
    classify_main([str(phase), str(clips / "mono.wav"), "--top_k", "1"])
    line = capsys.readouterr().out.strip()
    path, label, probs = line.split("\t")
    assert path == str(clips / "mono.wav") and label in LABELS
    assert probs.startswith(f"({label} ")
    (result,) = run_json([phase, clips / "mono.wav", "--top_k", "10"], capsys)
    assert sorted(result["probabilities"]) == LABELS
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    with pytest.raises(SystemExit):
        classify_main([str(phase), str(clips), "--top_k", "0"])
    assert "--top_k must be at least 1" in capsys.readouterr().err


def test_clear_errors(models, clips, tmp_path):
    phase, export = models
    with pytest.raises(FileNotFoundError, match="nothing.wav does not exist"):
        classify_main([str(phase), str(tmp_path / "nothing.wav")])
    with pytest.raises(FileNotFoundError, match="no audio files"):
        classify_main([str(phase), str(phase / "save")])
    with pytest.raises(FileNotFoundError, match="neither a phase output"):
        Classifier(clips)
    with pytest.raises(FileNotFoundError, match="model folder .* not exist"):
        Classifier(tmp_path / "missing")
    broken = tmp_path / "broken.wav"
    broken.write_text("not a wav file")
    for model in models:
        with pytest.raises(RuntimeError, match="cannot read audio.*broken"):
            Classifier(model)(broken)


def test_command_line_exit_status_and_message(models, tmp_path):
    phase, _ = models
    result = subprocess.run(
        [sys.executable, "-m", "speechbrain_kd.classify", str(phase), "x.wav"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": ""},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: x.wav does not exist"
