"""Export formats: ONNX and int8 against the trained model, checks before
anything is written, limits on the artifact, classify on every format."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_kd import export as export_module
from speechbrain_kd import export_formats, onnx_model
from speechbrain_kd.checkpoints import load_trained_model
from speechbrain_kd.classify import Classifier
from speechbrain_kd.classify import main as classify_main
from speechbrain_kd.complexity import model_complexity
from speechbrain_kd.export import EXPORT_INFO_FILE, export_model, main
from speechbrain_kd.onnx_model import OnnxModel, to_onnx
from tests.unittests.test_export import LABELS, RATE, make_phase, write_clips

pytest.importorskip("onnxruntime")


def labelled_manifest(tmp_path, name, n_clips, seed):
    """A manifest of noise clips (ID, wav, scene) at the model's rate."""
    clips = write_clips(
        tmp_path / name, {f"c{k}": (2, RATE) for k in range(n_clips)}, seed
    )
    path = tmp_path / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "wav", "scene"])
        for k, (clip_id, wav) in enumerate(clips.items()):
            writer.writerow([clip_id, wav, LABELS[k % len(LABELS)]])
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The raw-waveform phase exported once in all formats, verified."""
    tmp = tmp_path_factory.mktemp("formats")
    phase = make_phase(tmp / "phase", "raw")
    test = labelled_manifest(tmp, "test", 6, seed=3)
    train = labelled_manifest(tmp, "train", 8, seed=4)
    folder = export_model(
        phase,
        tmp / "export",
        formats="torch,onnx,int8",
        verify=test,
        calibration=train,
        min_int8_agreement=0.0,
    )
    return {"phase": phase, "folder": folder, "test": test, "train": train}


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("family", ["raw", "logmel", "mobile"])
def test_onnx_is_the_whole_model_with_dynamic_batch_and_length(
    tmp_path, family
):
    phase = make_phase(tmp_path / "phase", family)
    model = load_trained_model(phase)
    path = to_onnx(
        model.embedding_model, model.classifier, model.spec, tmp_path / "m.onnx"
    )
    onnx = OnnxModel(path)
    assert (onnx.labels, onnx.sample_rate, onnx.channels) == (LABELS, RATE, 2)
    for batch, samples in ((1, RATE), (3, 12345), (2, 3 * RATE)):
        wav = torch.randn(batch, samples, 2)
        with torch.no_grad():
            expected = torch.softmax(model(wav), -1).numpy()
        assert np.abs(onnx.posteriors(wav.numpy()) - expected).max() < 1e-4


def test_every_format_verified_against_the_trained_model(exported):
    folder = exported["folder"]
    assert {"model.onnx", "model.int8.onnx", "hyperparams.yaml"} <= set(
        listing(folder)
    )
    info = json.loads((folder / EXPORT_INFO_FILE).read_text())
    figures = info["formats"]
    assert list(figures) == ["torch", "onnx", "int8"]
    for name in ("torch", "onnx"):
        assert figures[name]["agreement"] == 1.0
        assert figures[name]["max_abs_diff"] < 1e-4
        assert figures[name]["accuracy"] == info["pytorch_accuracy"]
    assert figures["int8"]["max_abs_diff"] < 0.2
    for values in figures.values():
        assert values["n_clips"] == 6
        size = sum(
            (folder / file.strip()).stat().st_size
            for file in values["file"].split(",")
        )
        assert values["bytes_on_disk"] == size
    # Parameters at their precision: int8 weights take a byte, and the
    # float model stores the trained parameters (BatchNorm folded in).
    model = load_trained_model(exported["phase"])
    cost = model_complexity(model.embedding_model, model.classifier, RATE)
    assert (
        figures["torch"]["parameter_bytes"] == cost["parameter_bytes"]["fp32"]
    )
    assert figures["onnx"]["parameter_bytes"] < cost["parameter_bytes"]["fp32"]
    assert figures["int8"]["parameter_bytes"] < (
        figures["onnx"]["parameter_bytes"] / 2
    )
    assert figures["onnx"]["quantization_bytes"] == 0
    assert figures["int8"]["quantization_bytes"] > 0
    card = (folder / "README.md").read_text()
    for name in figures:
        assert f"| {name} | `{figures[name]['file']}` |" in card
    assert 'onnxruntime.InferenceSession("model.int8.onnx")' in card


def test_int8_parameter_bytes_exclude_the_log_mel_tables(tmp_path):
    phase = make_phase(tmp_path / "phase", "logmel")
    model = load_trained_model(phase)
    path = to_onnx(
        model.embedding_model, model.classifier, model.spec, tmp_path / "m.onnx"
    )
    stored = onnx_model.parameter_bytes(path)["parameters"]
    # The mel filterbank alone (257 x 16 floats) would be 16 kB.
    trained = 4 * sum(
        p.numel()
        for m in (model.embedding_model, model.classifier)
        for p in m.parameters()
    )
    assert stored <= trained


def test_a_failed_verification_leaves_nothing(exported, tmp_path):
    target = tmp_path / "out" / "export"
    with pytest.raises(RuntimeError, match="int8 agrees on top-1 .* below"):
        export_model(
            exported["phase"],
            target,
            formats="int8",
            verify=exported["test"],
            calibration=exported["train"],
            min_int8_agreement=1.01,
        )
    assert listing(tmp_path / "out") == []


def test_fp32_formats_must_match_within_float_tolerance(
    exported, tmp_path, monkeypatch
):
    monkeypatch.setattr(export_formats, "FP32_ATOL", -1.0)
    with pytest.raises(RuntimeError, match="onnx differs from PyTorch"):
        export_model(
            exported["phase"],
            tmp_path / "export",
            formats="onnx",
            verify=exported["test"],
        )
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "options, message",
    [
        ({"verify": "missing.csv"}, "--verify missing.csv does not exist"),
        ({"verify": "bad.csv"}, "is not a manifest of clips"),
        ({"formats": "onnx,tflite"}, "unknown export format"),
        ({"formats": "int8"}, "int8 needs calibration clips"),
        ({"formats": "int8", "calibration": "missing.csv"}, "--calibration"),
        (
            {"max_model_bytes": 100},
            "max_model_bytes=100: the torch model would hold at least 4,736",
        ),
        ({"max_params": 10}, "max_params=10: the exported model has"),
    ],
)
def test_arguments_are_checked_before_anything_is_written(
    exported, tmp_path, monkeypatch, options, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("path,label\n")

    def not_called(*args, **kwargs):
        raise AssertionError("wrote before checking the arguments")

    monkeypatch.setattr(export_module, "to_onnx", not_called)
    monkeypatch.setattr(export_module, "_write_torch", not_called)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        export_model(exported["phase"], tmp_path / "out" / "export", **options)
    assert not (tmp_path / "out").exists()


def test_model_bytes_are_checked_on_the_int8_file(exported, tmp_path):
    info = json.loads((exported["folder"] / EXPORT_INFO_FILE).read_text())
    measured = info["formats"]["int8"]["parameter_bytes"]
    counted = info["complexity"]["parameter_bytes"]["int8"]
    # Between the count (one byte a parameter) and the file (biases,
    # scales and the float layers): only the file can refuse it.
    assert counted < measured
    limit = measured - 1

    def export(max_model_bytes):
        export_model(
            exported["phase"],
            tmp_path / "export",
            formats="onnx,int8",
            calibration=exported["train"],
            max_model_bytes=max_model_bytes,
        )

    with pytest.raises(
        ValueError,
        match=f"max_model_bytes={limit}: the int8 model holds {measured:,}",
    ):
        export(limit)
    assert listing(tmp_path) == []
    export(measured)


def test_work_folders_of_killed_exports_are_removed(exported, tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    )
    dead = int(gone.stdout)
    abandoned = tmp_path / f".export.export-{dead}-abc"
    old = tmp_path / f".export.old-{dead}-def"
    running = tmp_path / f".export.export-{os.getpid()}-ghi"
    other = tmp_path / f".other.export-{dead}-jkl"
    for folder in (abandoned, old, running, other):
        (folder / "folder").mkdir(parents=True)
    export_model(exported["phase"], tmp_path / "export")
    assert listing(tmp_path) == sorted(["export", running.name, other.name])


def test_the_ensemble_folder_says_what_to_export(tmp_path):
    ensemble = tmp_path / "pipeline" / "ensemble"
    ensemble.mkdir(parents=True)
    (ensemble / "hyperparams.yaml").write_text("seed: 1\nphase: ensemble\n")
    with pytest.raises(ValueError, match="export one model instead, the stud"):
        export_model(ensemble, tmp_path / "export")
    assert listing(tmp_path) == ["pipeline"]


def test_an_operator_without_onnx_translation_is_named(tmp_path):
    class Zeta(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 2)

        def forward(self, wav):
            x = wav.mean(1)
            return self.linear(torch.special.zeta(x, x + 2.0))

    spec = {
        "embedding_model": {"class": "x.Zeta", "config": {"in_channels": 1}},
        "sample_rate": 100,
        "labels": ["a", "b"],
    }
    with pytest.raises(
        ValueError,
        match="Zeta cannot be exported to ONNX: operator prims.zeta .* "
        "formats that work for it: torch",
    ):
        to_onnx(Zeta(), torch.nn.Linear(2, 2), spec, tmp_path / "m.onnx")
    assert listing(tmp_path) == []


def test_the_stock_loader_is_silent(exported, caplog):
    from speechbrain.inference.classifiers import EncoderClassifier

    model = EncoderClassifier.from_hparams(
        source=str(exported["folder"]), savedir=str(exported["folder"])
    )
    model.classify_batch(torch.randn(1, RATE, 2))
    assert "expect_len was never called" not in caplog.text


def test_classify_takes_every_format_alike(exported, tmp_path, capsys):
    clips = write_clips(
        tmp_path / "clips", {"mono44k": (1, 44100), "stereo": (2, RATE)}
    )
    outputs = {}
    for name in ("torch", "onnx", "int8"):
        assert (
            classify_main(
                [
                    str(exported["folder"]),
                    str(tmp_path / "clips"),
                    "--json",
                    "--format",
                    name,
                    "--top_k",
                    "3",
                ]
            )
            == 0
        )
        outputs[name] = [
            json.loads(line) for line in capsys.readouterr().out.splitlines()
        ]
    phase = Classifier(exported["phase"])
    for k, path in enumerate(sorted(clips.values())):
        expected = phase(path)
        for name in ("torch", "onnx"):
            got = outputs[name][k]
            assert got["label"] == expected["label"]
            for label, p in expected["probabilities"].items():
                assert abs(got["probabilities"][label] - p) < 1e-4
    single = Classifier(exported["folder"] / "model.onnx")
    assert single(clips["stereo"]) == outputs["onnx"][1]
    only = tmp_path / "only_onnx"
    only.mkdir()
    os.link(exported["folder"] / "model.onnx", only / "model.onnx")
    with pytest.raises(
        FileNotFoundError, match="no int8 export; it holds onnx"
    ):
        Classifier(only, format="int8")
    assert Classifier(only).labels == LABELS


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_classify_refuses_non_finite_audio(exported, tmp_path, bad):
    wav = np.zeros((RATE, 2), dtype=np.float32)
    wav[100, 0] = bad
    path = tmp_path / "bad.wav"
    soundfile.write(path, wav, RATE, subtype="FLOAT")
    for name in ("torch", "onnx", "int8"):
        with pytest.raises(ValueError, match="bad.wav holds NaN or infinite"):
            Classifier(exported["folder"], format=name)(path)
    with pytest.raises(ValueError, match="bad.wav holds NaN or infinite"):
        Classifier(exported["phase"])(path)


def test_classify_command_exits_non_zero_on_nan_audio(exported, tmp_path):
    wav = np.zeros((RATE, 2), dtype=np.float32)
    wav[5, 1] = np.nan
    soundfile.write(tmp_path / "nan.wav", wav, RATE, subtype="FLOAT")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_kd.classify",
            str(exported["folder"]),
            str(tmp_path / "nan.wav"),
            "--json",
            "--format",
            "onnx",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().endswith(
        "nan.wav holds NaN or infinite samples"
    )


def test_cli_lists_the_known_formats(exported, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(exported["phase"]), str(tmp_path / "x"), "--format", "tfl"])
    assert "known: torch, onnx, int8" in capsys.readouterr().err
    assert listing(tmp_path) == []
