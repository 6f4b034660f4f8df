"""Teacher ensembles and soft-label caches: checks, staleness, lookups."""

import csv

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_kd.checkpoints import MODEL_SPEC_FILE
from speechbrain_kd.dataio import load_audio
from speechbrain_kd.models import RawWaveformCNN, SceneClassifier
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.soft_labels import OnlineSoftLabels, SoftLabelCache
from speechbrain_kd.teachers import PosteriorAverage, TeacherEnsemble

LABELS = ["a", "b", "c"]
RATE = 8000
SMALL = {
    "first_conv_channels": 8,
    "first_conv_kernel": 8,
    "block_channels": [8, 8],
    "final_channels": 8,
    "embedding_dim": 4,
}


def make_phase(folder, seed, labels=LABELS, rate=RATE, accuracy=0.5):
    torch.manual_seed(seed)
    emb, clf = RawWaveformCNN(**SMALL), SceneClassifier(4, len(labels))
    save = folder / "save"
    write_model_spec(save / MODEL_SPEC_FILE, emb, clf, rate, labels)
    Checkpointer(
        save, {"embedding_model": emb, "classifier": clf}
    ).save_checkpoint(meta={"accuracy": accuracy})
    return folder


def make_manifest(folder, n=6, seconds=0.5):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"clip{i}.wav"
        soundfile.write(
            path, rng.normal(0, 0.1, (int(RATE * seconds), 2)), RATE
        )
        rows.append({"ID": f"clip{i}", "wav": str(path)})
    manifest = folder / "train.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["ID", "wav"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture
def teachers(tmp_path):
    return [make_phase(tmp_path / f"t{k}", seed=k) for k in range(2)]


def build(tmp_path, teachers, **kw):
    ensemble = TeacherEnsemble.from_phase_folders(teachers, labels=LABELS)
    manifest = kw.pop("manifest", None) or make_manifest(tmp_path / "data")
    return (
        SoftLabelCache.build_or_load(
            tmp_path / "cache.pt", ensemble, manifest, RATE, 2, **kw
        ),
        ensemble,
        manifest,
    )


def test_teachers_with_other_labels_are_refused(tmp_path, teachers):
    odd = make_phase(tmp_path / "odd", 5, labels=["a", "c", "b"])
    with pytest.raises(ValueError, match="one label order"):
        TeacherEnsemble.from_phase_folders([*teachers, odd])
    with pytest.raises(ValueError, match="the student has"):
        TeacherEnsemble.from_phase_folders(teachers, labels=["a", "b", "d"])


def test_teachers_with_other_rates_are_refused(tmp_path, teachers):
    other = make_phase(tmp_path / "other", 5, rate=16000)
    with pytest.raises(ValueError, match="16000 Hz"):
        TeacherEnsemble.from_phase_folders([*teachers, other])


def test_teachers_stay_frozen_in_eval_mode(teachers):
    ensemble = TeacherEnsemble.from_phase_folders(teachers)
    ensemble.train()
    assert not any(m.training for m in ensemble.modules())
    assert not any(p.requires_grad for p in ensemble.parameters())
    out = ensemble(torch.randn(3, 4000, 2, requires_grad=True))
    assert out.shape == (2, 3, 3) and not out.requires_grad


def test_online_equals_cached_for_the_same_view(tmp_path, teachers):
    cache, ensemble, manifest = build(tmp_path, teachers)
    ids = ["clip3", "clip0"]
    batch = PaddedBatch(
        [
            {
                "id": i,
                "teacher_sig": load_audio(
                    tmp_path / "data" / f"{i}.wav", RATE, 2
                ),
            }
            for i in ids
        ]
    )
    online = OnlineSoftLabels(ensemble).teacher_logits(batch)
    cached = cache.teacher_logits(batch)
    assert cached.shape == (2, 2, 3)
    assert torch.allclose(online, cached, atol=1e-5)


def test_multi_segment_cache_averages_the_partner(tmp_path, teachers):
    cache, _, _ = build(tmp_path, teachers)
    multi = SoftLabelCache(cache.ids, cache.logits, cache.fingerprint, True)
    batch = PaddedBatch([{"id": "clip1", "partner_id": "clip4"}])
    one = cache.teacher_logits(PaddedBatch([{"id": "clip1"}]))
    two = cache.teacher_logits(PaddedBatch([{"id": "clip4"}]))
    assert torch.allclose(multi.teacher_logits(batch), (one + two) / 2)


def test_cache_is_reused_when_current(tmp_path, teachers, monkeypatch):
    _, _, manifest = build(tmp_path, teachers)

    def no_compute(*args, **kwargs):
        raise AssertionError("a current cache must not be recomputed")

    monkeypatch.setattr(
        "speechbrain_kd.soft_labels.compute_teacher_logits", no_compute
    )
    build(tmp_path, teachers, manifest=manifest)


def test_changed_teacher_checkpoint_invalidates(tmp_path, teachers):
    _, _, manifest = build(tmp_path, teachers)
    make_phase(teachers[1], seed=9, accuracy=0.9)  # a better checkpoint
    with pytest.raises(RuntimeError, match="the teachers changed"):
        build(tmp_path, teachers, manifest=manifest, rebuild="never")
    cache, _, _ = build(tmp_path, teachers, manifest=manifest)  # rebuilt
    assert cache.fingerprint["teachers"] != ""


def test_changed_manifest_or_setting_invalidates(tmp_path, teachers):
    cache, _, manifest = build(tmp_path, teachers)
    with open(manifest, "a") as f:
        f.write(f"clip9,{tmp_path / 'data' / 'clip0.wav'}\n")
    with pytest.raises(RuntimeError, match="the manifest changed"):
        build(tmp_path, teachers, manifest=manifest, rebuild="never")
    rebuilt, _, _ = build(tmp_path, teachers, manifest=manifest)
    assert "clip9" in rebuilt.ids
    with pytest.raises(RuntimeError, match="the settings changed"):
        build(
            tmp_path,
            teachers,
            manifest=manifest,
            rebuild="never",
            n_crop_views=2,
            crop_seconds=0.25,
        )


def test_clips_missing_from_the_cache_are_named(tmp_path, teachers):
    cache, _, _ = build(tmp_path, teachers)
    with pytest.raises(KeyError, match="clip77"):
        cache.teacher_logits(PaddedBatch([{"id": "clip1"}, {"id": "clip77"}]))


def test_failed_build_leaves_no_cache(tmp_path, teachers, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(
        "speechbrain_kd.soft_labels.compute_teacher_logits", broken
    )
    with pytest.raises(OSError):
        build(tmp_path, teachers)
    assert list(tmp_path.glob("cache.pt*")) == []


def test_crop_views_are_cached_per_clip(tmp_path, teachers):
    cache, _, _ = build(tmp_path, teachers, n_crop_views=2, crop_seconds=0.25)
    assert cache.logits.shape == (6, 3, 2, 3)


def test_posterior_average_weights():
    logits = torch.randn(3, 4, 5)
    probs = torch.softmax(logits, -1)
    avg = PosteriorAverage([1, 2, 1])(logits).exp()
    assert torch.allclose(
        avg, (probs[0] + 2 * probs[1] + probs[2]) / 4, atol=1e-6
    )
    with pytest.raises(ValueError, match="2 ensemble weights given for 3"):
        PosteriorAverage([1, 2])(logits)
