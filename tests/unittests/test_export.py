"""Export: stock EncoderClassifier loads it offline, same predictions as the
recipe, atomic writes, audit of hyperparams.yaml, mocked hub push."""

import csv
import json
import os

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_kd import export as export_module
from speechbrain_kd import speechbrain_folder
from speechbrain_kd.audio import load_audio
from speechbrain_kd.audit import audit_hyperparams
from speechbrain_kd.checkpoints import MODEL_SPEC_FILE, load_trained_model
from speechbrain_kd.export import export_model
from speechbrain_kd.hub import audit_model, push_to_hub
from speechbrain_kd.hub import main as hub_main
from speechbrain_kd.labels import load_or_create_label_encoder
from speechbrain_kd.models import LogMelCNN, RawWaveformCNN, SceneClassifier
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.speechbrain_folder import load_exported, verify_export

LABELS = ["airport", "bus", "park"]
RATE = 16000
# The log-mel family's size; "mobile" is it with inverted residual blocks.
LOGMEL = {
    "sample_rate": RATE,
    "n_mels": 16,
    "n_fft": 512,
    "conv_channels": (4, 8),
    "embedding_dim": 4,
}
FAMILIES = {
    "raw": lambda: RawWaveformCNN(
        first_conv_channels=8,
        first_conv_kernel=8,
        block_channels=[8, 8],
        final_channels=8,
        embedding_dim=4,
    ),
    "logmel": lambda: LogMelCNN(**LOGMEL),
    "mobile": lambda: LogMelCNN(
        **LOGMEL, block="inverted_residual", expansion=2
    ),
}


def make_phase(folder, family="raw", seed=0):
    """A phase output folder as train.py leaves it, with a tiny model."""
    torch.manual_seed(seed)
    emb, clf = FAMILIES[family](), SceneClassifier(4, len(LABELS))
    # Non-trivial BatchNorm statistics, as after training.
    emb.train()
    with torch.no_grad():
        for _ in range(3):
            emb(torch.randn(4, RATE, 2))
    save = folder / "save"
    write_model_spec(
        save / MODEL_SPEC_FILE, emb, clf, RATE, LABELS, phase="student"
    )
    load_or_create_label_encoder(save / "label_encoder.txt", LABELS)
    checkpointer = Checkpointer(
        save, {"embedding_model": emb, "classifier": clf}
    )
    checkpointer.save_checkpoint(meta={"accuracy": 0.5}, name="good")
    # A worse checkpoint with other weights must not be the one exported.
    with torch.no_grad():
        clf.linear.weight.mul_(-1)
    checkpointer.save_checkpoint(meta={"accuracy": 0.1}, name="worse")
    (folder / "test_results.json").write_text(
        json.dumps(
            {
                "accuracy": 0.625,
                "n_clips": 8,
                "classwise_accuracy": {
                    "airport": 0.5,
                    "bus": 1.0,
                    "park": None,
                },
            }
        )
    )
    return folder


def write_clips(folder, specs, seed=0):
    """``{name: (channels, rate)}`` -> ``{name: path}`` of 1-s noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (channels, rate) in specs.items():
        shape = (rate,) if channels == 1 else (rate, channels)
        paths[name] = folder / f"{name}.wav"
        soundfile.write(paths[name], rng.normal(0, 0.1, shape), rate)
    return paths


def recipe_predictions(phase, paths, out_csv):
    """test_predictions.csv as the recipe writes it, from the phase's model.

    Audio goes through the recipe's own reader (resample, adapt channels).
    """
    model = load_trained_model(phase)
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "target", "prediction", *LABELS])
        for clip_id, path in paths.items():
            wav = load_audio(path, model.sample_rate, 2)
            with torch.no_grad():
                probs = torch.softmax(model(wav[None]), -1)[0].tolist()
            best = LABELS[int(np.argmax(probs))]
            writer.writerow(
                [clip_id, LABELS[0], best, *(f"{p:.6g}" for p in probs)]
            )
    return out_csv


def write_manifest(paths, out_csv):
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "duration", "wav"])
        for clip_id, path in paths.items():
            writer.writerow([clip_id, 1.0, str(path)])
    return out_csv


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing here may touch the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("family", ["raw", "logmel"])
def test_stock_encoder_classifier_gives_the_recipe_predictions(
    tmp_path, family
):
    phase = make_phase(tmp_path / "phase", family)
    export = export_model(phase, tmp_path / "export")
    assert {p.name for p in export.iterdir()} >= {
        "hyperparams.yaml",
        "embedding_model.ckpt",
        "classifier.ckpt",
        "label_encoder.txt",
        "README.md",
    }
    # Test clips at the model's rate, as the recipe's test split is.
    clips = write_clips(
        tmp_path / "test",
        {f"clip{k}": (2, RATE) for k in range(4)},
        seed=len(family),
    )
    predictions = recipe_predictions(phase, clips, tmp_path / "pred.csv")
    manifest = write_manifest(clips, tmp_path / "test.csv")
    report = verify_export(export, predictions, manifest)
    assert report["n_clips"] == 4
    assert report["label_mismatches"] == []
    assert report["posterior_mismatches"] == []
    assert report["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("family", ["raw", "logmel"])
def test_any_rate_and_channel_count_against_a_binaural_16k_model(
    tmp_path, family
):
    phase = make_phase(tmp_path / "phase", family)
    export = export_model(phase, tmp_path / "export")
    model = load_exported(export, savedir=tmp_path / "savedir")
    trained = load_trained_model(phase)
    clips = write_clips(
        tmp_path / "clips",
        {"mono": (1, RATE), "four": (4, RATE), "cd_rate": (2, 44100)},
    )
    for name, path in clips.items():
        out_prob, score, index, label = model.classify_file(str(path))
        wav = load_audio(path, RATE, 2)
        with torch.no_grad():
            expected = torch.log_softmax(trained(wav[None]), -1)
        # SpeechBrain's resampler differs slightly from torchaudio's.
        atol = 1e-3 if name == "cd_rate" else 1e-5
        assert torch.allclose(out_prob, expected, atol=atol), name
        assert label == [LABELS[int(expected.argmax())]]
        assert int(index) == int(expected.argmax())
    # A binaural model keeps both channels of a stereo file.
    stereo = write_clips(tmp_path / "s", {"stereo": (2, RATE)})["stereo"]
    assert model.load_audio(str(stereo)).shape == (RATE, 2)


def test_export_holds_the_best_checkpoint(tmp_path):
    phase = make_phase(tmp_path / "phase")
    export = export_model(phase, tmp_path / "export")
    best = torch.load(
        phase / "save/CKPT+good/classifier.ckpt", weights_only=True
    )
    exported = torch.load(export / "classifier.ckpt", weights_only=True)
    assert torch.equal(best["linear.weight"], exported["linear.weight"])


def test_loading_works_offline_and_savedir_holds_links(tmp_path):
    export = export_model(make_phase(tmp_path / "p"), tmp_path / "e")
    before = sorted(os.listdir(export))
    load_exported(export)  # savedir = the folder: nothing is written
    assert sorted(os.listdir(export)) == before
    load_exported(export, savedir=tmp_path / "cache")
    linked = tmp_path / "cache" / "embedding_model.ckpt"
    assert linked.is_symlink() and linked.resolve() == (
        export / "embedding_model.ckpt"
    )


def test_stock_loader_refuses_pickled_code_in_weights(tmp_path):
    export = export_model(make_phase(tmp_path / "p"), tmp_path / "e")
    state = torch.load(export / "classifier.ckpt", weights_only=True)
    state["_extra"] = LogMelCNN  # a class: unpickling it would import code
    torch.save(state, export / "classifier.ckpt")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_exported(export, savedir=tmp_path / "cache")


def test_export_refuses_to_overwrite_and_is_atomic(tmp_path, monkeypatch):
    phase = make_phase(tmp_path / "phase")
    target = tmp_path / "export"
    export_model(phase, target)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(phase, target)
    card = (target / "README.md").read_text()

    def broken(*args):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(export_module, "_check_loads_the_same", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        export_model(phase, target, overwrite=True)
    # The old export is intact and no temporary folder is left behind.
    assert (target / "README.md").read_text() == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "phase"]
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export_model(phase, target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "phase"]


def test_export_check_catches_a_yaml_that_changes_the_outputs(
    tmp_path, monkeypatch
):
    phase = make_phase(tmp_path / "phase")
    original = speechbrain_folder.hyperparams_yaml

    def softmax_not_log_softmax(spec):
        return original(spec).replace("torch.nn.LogSoftmax", "torch.nn.Softmax")

    monkeypatch.setattr(
        speechbrain_folder, "hyperparams_yaml", softmax_not_log_softmax
    )
    with pytest.raises(RuntimeError, match="does not reproduce"):
        export_model(phase, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_export_rejects_inconsistent_phase_folders(tmp_path):
    phase = make_phase(tmp_path / "phase")
    (phase / "save/label_encoder.txt").unlink()
    load_or_create_label_encoder(phase / "save/label_encoder.txt", ["a", "b"])
    with pytest.raises(ValueError, match="label_encoder.txt holds labels"):
        export_model(phase, tmp_path / "export")
    with pytest.raises(FileNotFoundError, match="model_spec.json is missing"):
        export_model(tmp_path, tmp_path / "export")


def test_verify_export_reports_a_different_model(tmp_path):
    export = export_model(make_phase(tmp_path / "a"), tmp_path / "export")
    other = make_phase(tmp_path / "b", seed=1)
    clips = write_clips(tmp_path / "test", {"c1": (2, RATE), "c2": (2, RATE)})
    predictions = recipe_predictions(other, clips, tmp_path / "pred.csv")
    manifest = write_manifest(clips, tmp_path / "test.csv")
    report = verify_export(export, predictions, manifest)
    assert report["posterior_mismatches"] == ["c1", "c2"]
    write_manifest({"c1": clips["c1"]}, manifest)
    with pytest.raises(KeyError, match="1 clip"):
        verify_export(export, predictions, manifest)


def test_model_card_and_yaml_audit(tmp_path):
    phase = make_phase(tmp_path / "phase")
    (phase / "confusion_matrix.png").write_bytes(b"\x89PNG fake")
    export = export_model(phase, tmp_path / "export")
    audit = audit_hyperparams(export / "hyperparams.yaml")
    targets = {entry.target for entry in audit}
    assert "speechbrain_kd.models.raw_cnn.RawWaveformCNN" in targets
    assert all(entry.allowed for entry in audit)
    card = (export / "README.md").read_text()
    assert "10.1109/ACCESS.2020.3021711" in card
    assert "62.50 %" in card and "| bus | 100.0 % |" in card
    assert "| park | n/a |" in card
    assert "arbitrary code" in card and "audit_hyperparams" in card
    assert (export / "confusion_matrix.png").read_bytes() == b"\x89PNG fake"
    assert "![confusion matrix](confusion_matrix.png)" in card


def test_audit_flags_code_outside_the_allow_list(tmp_path):
    path = tmp_path / "hyperparams.yaml"
    path.write_text(
        "%TAG !e! !new:\n---\n"
        "a: !e!subprocess.Popen [ls]\n"
        "b: !new:torch.nn.Linear [1, 1]\n"
        "c: !apply:torch.hub.load [x, y]\n"
        "d: !apply:speechbrain.inference.interfaces.foreign_class [x]\n"
        "e: !include:other.yaml\n"
        "f: !name:speechbrain.utils.superpowers.run_shell\n"
        "g: !ref <b>\n"
    )
    flagged = [
        (e.tag, e.target) for e in audit_hyperparams(path) if not e.allowed
    ]
    assert flagged == [
        ("!new:", "subprocess.Popen"),
        ("!apply:", "torch.hub.load"),
        ("!apply:", "speechbrain.inference.interfaces.foreign_class"),
        ("!include:other.yaml", ""),
        ("!name:", "speechbrain.utils.superpowers.run_shell"),
    ]
    assert audit_model(tmp_path) == audit_hyperparams(path)
    assert hub_main(["audit", str(tmp_path)]) == 1


class FakeApi:
    """Records what push_to_hub asks of huggingface_hub.HfApi."""

    calls = None

    def __init__(self, token=None):
        FakeApi.calls = {"token": token}

    def create_repo(self, repo_id, private, exist_ok, repo_type):
        self.calls["repo"] = (repo_id, private, repo_type)

    def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
        self.calls["upload"] = (folder_path, repo_id)
        return "https://hf.co/me/scenes/commit/1"


def test_push_uploads_the_folder(tmp_path, monkeypatch):
    export = export_model(make_phase(tmp_path / "p"), tmp_path / "e")
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setattr("speechbrain_kd.hub.check_online", lambda: None)
    monkeypatch.setenv("HF_TOKEN", "secret")
    url = push_to_hub(export, "me/scenes", private=True)
    assert url == "https://hf.co/me/scenes/commit/1"
    assert FakeApi.calls == {
        "token": "secret",
        "repo": ("me/scenes", True, "model"),
        "upload": (str(export), "me/scenes"),
    }
    push_to_hub(export, "me/scenes", token="given")
    assert FakeApi.calls["token"] == "given"
    assert FakeApi.calls["repo"] == ("me/scenes", False, "model")


def test_push_failures_are_clear_and_fast(tmp_path, monkeypatch):
    export = export_model(make_phase(tmp_path / "p"), tmp_path / "e")
    monkeypatch.setenv("HF_TOKEN", "secret")
    with pytest.raises(RuntimeError, match="me/scenes.*HF_HUB_OFFLINE"):
        push_to_hub(export, "me/scenes")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # A closed local port: refused at once.
    monkeypatch.setattr(
        "speechbrain_kd.hub._endpoint", lambda: "https://127.0.0.1:9"
    )
    with pytest.raises(RuntimeError, match="me/scenes.*127.0.0.1:9"):
        push_to_hub(export, "me/scenes")

    class FailingApi(FakeApi):
        def upload_folder(self, **kwargs):
            raise ConnectionError("connection reset")

    monkeypatch.setattr("speechbrain_kd.hub.check_online", lambda: None)
    monkeypatch.setattr("huggingface_hub.HfApi", FailingApi)
    with pytest.raises(RuntimeError, match="to me/scenes failed.*reset"):
        push_to_hub(export, "me/scenes")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(RuntimeError, match="no Hugging Face token"):
        push_to_hub(export, "me/scenes")
    with pytest.raises(ValueError, match="user/name"):
        push_to_hub(export, "scenes", token="t")
    with pytest.raises(FileNotFoundError, match="not an exported model"):
        push_to_hub(tmp_path, "me/scenes", token="t")


def test_check_online_does_not_wait_for_a_hanging_dns(monkeypatch):
    import time

    from speechbrain_kd.hub import check_online

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(
        "speechbrain_kd.hub.socket.getaddrinfo",
        lambda *args, **kwargs: time.sleep(1),
    )
    with pytest.raises(RuntimeError, match="example.org:443 .timed out"):
        check_online("https://example.org", timeout=0.05)
