"""Export: loads with SpeechBrain's stock EncoderClassifier, same outputs."""

import json

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_kd.checkpoints import MODEL_SPEC_FILE, load_trained_model
from speechbrain_kd.classify import Classifier, audio_files
from speechbrain_kd.classify import main as classify_main
from speechbrain_kd.dataio import load_audio
from speechbrain_kd.export import (
    audit_hyperparams,
    export_model,
    load_exported,
)
from speechbrain_kd.hub import push_to_hub
from speechbrain_kd.labels import load_or_create_label_encoder
from speechbrain_kd.models import LogMelCNN, RawWaveformCNN, SceneClassifier
from speechbrain_kd.models.spec import write_model_spec

LABELS = ["airport", "bus", "park"]
RATE = 16000
FAMILIES = {
    "raw": lambda: RawWaveformCNN(
        first_conv_channels=8,
        first_conv_kernel=8,
        block_channels=[8, 8],
        final_channels=8,
        embedding_dim=4,
    ),
    "logmel": lambda: LogMelCNN(
        sample_rate=RATE,
        n_mels=16,
        n_fft=512,
        conv_channels=[4, 8],
        embedding_dim=4,
    ),
}


def make_phase(folder, family):
    torch.manual_seed(0)
    emb, clf = FAMILIES[family](), SceneClassifier(4, len(LABELS))
    # Non-trivial BatchNorm statistics, as after training.
    emb.train()
    with torch.no_grad():
        for _ in range(3):
            emb(torch.randn(4, RATE, 2))
    save = folder / "save"
    write_model_spec(save / MODEL_SPEC_FILE, emb, clf, RATE, LABELS)
    load_or_create_label_encoder(save / "label_encoder.txt", LABELS)
    Checkpointer(
        save, {"embedding_model": emb, "classifier": clf}
    ).save_checkpoint(meta={"accuracy": 0.5})
    (folder / "test_results.json").write_text(
        json.dumps(
            {
                "accuracy": 0.5,
                "n_clips": 2,
                "classwise_accuracy": dict.fromkeys(LABELS, 0.5),
            }
        )
    )
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    files = {
        "stereo": (rng.normal(0, 0.1, (RATE, 2)), RATE),
        "mono": (rng.normal(0, 0.1, RATE), RATE),
        "four": (rng.normal(0, 0.1, (RATE, 4)), RATE),
        "cd_rate": (rng.normal(0, 0.1, (44100, 2)), 44100),
    }
    for name, (data, rate) in files.items():
        soundfile.write(folder / f"{name}.wav", data, rate)
    return folder


@pytest.mark.parametrize("family", ["raw", "logmel"])
def test_stock_encoder_classifier_matches_the_trained_model(
    tmp_path, clips, family, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    phase = make_phase(tmp_path / "phase", family)
    export = export_model(phase, tmp_path / "export")
    assert {p.name for p in export.iterdir()} >= {
        "hyperparams.yaml",
        "embedding_model.ckpt",
        "classifier.ckpt",
        "label_encoder.txt",
        "README.md",
    }
    model = load_exported(export, savedir=tmp_path / "savedir")
    trained = load_trained_model(phase)
    for name in ("stereo", "mono", "four", "cd_rate"):
        out_prob, score, index, label = model.classify_file(
            str(clips / f"{name}.wav")
        )
        wav = load_audio(clips / f"{name}.wav", RATE, 2)
        expected = torch.log_softmax(trained(wav[None]), -1)
        # Resamplers differ slightly (SpeechBrain's vs torchaudio's).
        atol = 1e-3 if name == "cd_rate" else 1e-5
        assert torch.allclose(out_prob, expected, atol=atol), name
        assert label == [LABELS[int(expected.argmax())]]


def test_binaural_input_is_not_mixed_to_mono(tmp_path, clips, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export = export_model(make_phase(tmp_path / "p", "raw"), tmp_path / "e")
    model = load_exported(export, savedir=tmp_path / "s")
    assert model.load_audio(str(clips / "stereo.wav")).shape == (RATE, 2)


def test_export_refuses_to_overwrite(tmp_path):
    phase = make_phase(tmp_path / "phase", "raw")
    export_model(phase, tmp_path / "export")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(phase, tmp_path / "export")
    export_model(phase, tmp_path / "export", overwrite=True)


def test_exported_yaml_calls_only_known_code(tmp_path):
    export = export_model(make_phase(tmp_path / "p", "raw"), tmp_path / "e")
    audit = audit_hyperparams(export / "hyperparams.yaml")
    assert audit and all(safe for _, safe in audit)
    card = (export / "README.md").read_text()
    assert "10.1109/ACCESS.2020.3021711" in card and "arbitrary" not in card
    assert "run" in card or "calls" in card


def test_classify_cli_on_phase_and_export(tmp_path, clips, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    phase = make_phase(tmp_path / "phase", "raw")
    export = export_model(phase, tmp_path / "export")
    classify_main([str(phase), str(clips), "--json", "--top_k", "2"])
    from_phase = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    classify_main([str(export), str(clips), "--json", "--top_k", "2"])
    from_export = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(from_phase) == len(audio_files([clips])) == 4
    for a, b in zip(from_phase, from_export):
        assert a["label"] == b["label"] and len(a["probabilities"]) == 2
    with pytest.raises(FileNotFoundError, match="neither a phase"):
        Classifier(tmp_path)


def test_push_uploads_the_folder(tmp_path, monkeypatch):
    export = export_model(make_phase(tmp_path / "p", "raw"), tmp_path / "e")
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private, exist_ok, repo_type):
            calls["repo"] = (repo_id, private)

        def upload_folder(
            self, folder_path, repo_id, repo_type, commit_message
        ):
            calls["folder"] = folder_path
            return "https://hub/commit/1"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setattr("speechbrain_kd.hub.check_online", lambda: None)
    monkeypatch.setenv("HF_TOKEN", "secret")
    assert (
        push_to_hub(export, "me/scenes", private=True) == "https://hub/commit/1"
    )
    assert calls == {
        "token": "secret",
        "repo": ("me/scenes", True),
        "folder": str(export),
    }


def test_push_offline_fails_fast(tmp_path, monkeypatch):
    export = export_model(make_phase(tmp_path / "p", "raw"), tmp_path / "e")
    monkeypatch.setenv("HF_TOKEN", "secret")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        push_to_hub(export, "me/scenes")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(
        "speechbrain_kd.hub._endpoint", lambda: "https://127.0.0.1:9"
    )
    with pytest.raises(RuntimeError, match="cannot reach 127.0.0.1:9"):
        push_to_hub(export, "me/scenes")
    with pytest.raises(FileNotFoundError, match="not an exported model"):
        push_to_hub(tmp_path, "me/scenes")
