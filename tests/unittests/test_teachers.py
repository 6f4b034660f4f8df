"""Teacher ensembles: agreement checks, frozen eval mode, fingerprints and
the averaged-posterior ensemble."""

import pytest
import speechbrain as sb
import torch
import torchaudio
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_kd.brain import SceneClassificationBrain
from speechbrain_kd.checkpoints import (
    MODEL_SPEC_FILE,
    find_best_checkpoint,
    load_trained_model,
)
from speechbrain_kd.models import LogMelCNN, RawWaveformCNN, SceneClassifier
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.teachers import PosteriorAverage, TeacherEnsemble

LABELS = ["a", "b", "c"]
RATE = 8000
SMALL_RAW = {
    "first_conv_channels": 8,
    "first_conv_kernel": 8,
    "block_channels": [8, 8],
    "final_channels": 8,
    "embedding_dim": 4,
}
SMALL_MEL = {
    "sample_rate": RATE,
    "n_mels": 8,
    "n_fft": 256,
    "conv_channels": [4, 8],
    "embedding_dim": 4,
}


def make_phase(
    folder, seed, labels=LABELS, rate=RATE, accuracy=0.5, family="raw"
):
    """A phase output folder holding one (untrained) checkpointed model."""
    torch.manual_seed(seed)
    if family == "raw":
        emb = RawWaveformCNN(**SMALL_RAW)
    else:
        emb = LogMelCNN(**dict(SMALL_MEL, sample_rate=rate))
    clf = SceneClassifier(4, len(labels))
    # Non-trivial BatchNorm statistics, so eval and train modes differ.
    for module in emb.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    save = folder / "save"
    write_model_spec(save / MODEL_SPEC_FILE, emb, clf, rate, labels)
    Checkpointer(
        save, {"embedding_model": emb, "classifier": clf}
    ).save_checkpoint(meta={"accuracy": accuracy})
    return folder


@pytest.fixture
def teachers(tmp_path):
    return [make_phase(tmp_path / f"t{k}", seed=k) for k in range(2)]


def test_teacher_with_other_labels_than_the_student_is_named(
    tmp_path, teachers
):
    odd = make_phase(tmp_path / "odd", 5, labels=["a", "b", "d"])
    with pytest.raises(ValueError) as error:
        TeacherEnsemble.from_teacher_folders([*teachers, odd], labels=LABELS)
    message = str(error.value)
    assert str(odd) in message and "student" in message
    assert "has ['d'] that it lacks" in message and "lacks ['c']" in message
    assert "teacher_label_map" in message


def test_teacher_in_another_label_order_is_reordered_by_name(tmp_path):
    shuffled = make_phase(tmp_path / "odd", 5, labels=["c", "a", "b"])
    ensemble = TeacherEnsemble.from_teacher_folders([shuffled], labels=LABELS)
    wavs = torch.randn(3, 4000, 2)
    with torch.no_grad():
        own = load_trained_model(shuffled)(wavs)  # columns c, a, b
    assert ensemble.labels == LABELS
    assert torch.equal(ensemble(wavs)[0], own[:, [1, 2, 0]])


def test_label_map_merges_and_drops_teacher_labels(tmp_path):
    # A teacher of four classes: "b1" and "b2" are the student's "b", "x"
    # is not a student class; "a" and "c" keep their names.
    fine = make_phase(tmp_path / "fine", 3, labels=["a", "b1", "b2", "c", "x"])
    label_map = {"b1": "b", "b2": "b", "x": None}
    ensemble = TeacherEnsemble.from_teacher_folders(
        [fine], labels=LABELS, label_map=label_map
    )
    wavs = torch.randn(3, 4000, 2)
    with torch.no_grad():
        probs = torch.softmax(load_trained_model(fine)(wavs), -1)
    expected = torch.stack(
        [probs[:, 0], probs[:, 1] + probs[:, 2], probs[:, 3]], -1
    )
    out = ensemble(wavs)[0]
    # Log-posteriors of the merged classes; KD's softmax renormalises.
    assert torch.allclose(out.exp(), expected, atol=1e-6)
    assert torch.allclose(
        torch.softmax(out, -1), expected / expected.sum(-1, keepdim=True)
    )
    with pytest.raises(ValueError, match=r"lacks \['b'\]"):
        TeacherEnsemble.from_teacher_folders(
            [fine], labels=LABELS, label_map={"x": None}
        )
    with pytest.raises(ValueError, match=r"maps \['bb'\], which no teacher"):
        TeacherEnsemble.from_teacher_folders(
            [fine], labels=LABELS, label_map=dict(label_map, bb="b")
        )
    # The map is part of what the cache is keyed by.
    other = TeacherEnsemble.from_teacher_folders(
        [fine], labels=LABELS, label_map=dict(label_map, x="c")
    )
    assert other.fingerprint() != ensemble.fingerprint()


def test_teacher_at_another_rate_gets_its_own_view(tmp_path, teachers):
    fast = make_phase(tmp_path / "fast", 5, rate=16000)
    ensemble = TeacherEnsemble.from_teacher_folders(
        [teachers[0], fast], sample_rate=RATE
    )
    wavs, lengths = torch.randn(2, 4000, 2), torch.tensor([1.0, 0.5])
    out = ensemble(wavs, lengths)
    resampled = torchaudio.functional.resample(
        wavs.transpose(1, 2).contiguous(), RATE, 16000
    )
    with torch.no_grad():
        expected = load_trained_model(fast)(resampled.transpose(1, 2), lengths)
        plain = load_trained_model(fast)(wavs, lengths)
    assert ensemble.sample_rate == RATE
    assert torch.allclose(out[1], expected, atol=1e-5)
    assert not torch.allclose(out[1], plain, atol=1e-3)
    with torch.no_grad():
        assert torch.equal(
            out[0], load_trained_model(teachers[0])(wavs, lengths)
        )


def test_teachers_that_disagree_with_each_other_are_refused(tmp_path, teachers):
    odd = make_phase(tmp_path / "odd", 5, labels=["a", "b", "d"])
    with pytest.raises(ValueError) as error:
        TeacherEnsemble.from_teacher_folders([*teachers, odd])
    message = str(error.value)
    assert str(odd) in message and str(teachers[0]) in message
    assert "['d']" in message and "['c']" in message


def test_teachers_with_other_rates_are_refused(tmp_path, teachers):
    other = make_phase(tmp_path / "other", 5, rate=16000)
    with pytest.raises(ValueError, match="16000 Hz") as error:
        TeacherEnsemble.from_teacher_folders([*teachers, other])
    assert str(other) in str(error.value)


def test_model_families_mix_and_keep_their_own_outputs(tmp_path):
    raw = make_phase(tmp_path / "raw", 1)
    mel = make_phase(tmp_path / "mel", 2, family="mel")
    ensemble = TeacherEnsemble.from_teacher_folders(
        {"raw": raw, "mel": mel}, labels=LABELS
    )
    assert ensemble.names == ["raw", "mel"]
    wavs, lengths = torch.randn(3, 4000, 2), torch.tensor([1.0, 0.7, 0.5])
    out = ensemble(wavs, lengths)
    assert out.shape == (2, 3, 3) and out.dtype == torch.float32
    for k, folder in enumerate((raw, mel)):
        alone = load_trained_model(folder)
        with torch.no_grad():
            assert torch.allclose(out[k], alone(wavs, lengths), atol=1e-6)


def test_teachers_stay_frozen_in_eval_mode(teachers):
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    wavs = torch.randn(4, 4000, 2)
    before = ensemble(wavs)
    stats = [b.clone() for b in ensemble.buffers()]
    # What a Brain does at the start of every training epoch.
    modules = torch.nn.ModuleDict({"teachers": ensemble}).train()
    assert modules.training
    assert not any(m.training for m in ensemble.modules())
    after = ensemble(wavs)
    assert torch.equal(before, after)  # eval-mode BatchNorm, same output
    for old, new in zip(stats, ensemble.buffers(), strict=True):
        assert torch.equal(old, new)  # running statistics untouched


def test_teachers_hold_no_gradients(teachers):
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    assert not any(p.requires_grad for p in ensemble.parameters())
    wavs = torch.randn(2, 4000, 2, requires_grad=True)
    out = ensemble(wavs)
    assert not out.requires_grad and out.grad_fn is None


def test_fingerprint_follows_checkpoint_content(tmp_path, teachers):
    first = TeacherEnsemble.from_teacher_folders(teachers)
    assert first.fingerprint() == (
        TeacherEnsemble.from_teacher_folders(teachers).fingerprint()
    )
    swapped = TeacherEnsemble.from_teacher_folders(teachers[::-1])
    assert swapped.fingerprint() != first.fingerprint()
    # Overwrite the weights file of the best checkpoint in place.
    best = find_best_checkpoint(teachers[1])
    other = SceneClassifier(4, 3)
    torch.save(other.state_dict(), best.paramfiles["classifier"])
    reloaded = TeacherEnsemble.from_teacher_folders(teachers)
    held = reloaded.fingerprint()
    assert held != first.fingerprint()
    # An ensemble describes the weights it holds, not later file changes.
    torch.save(
        SceneClassifier(4, 3).state_dict(), best.paramfiles["classifier"]
    )
    assert reloaded.fingerprint() == held
    assert TeacherEnsemble.from_teacher_folders(teachers).fingerprint() != held


def test_a_better_checkpoint_changes_the_fingerprint(teachers):
    before = TeacherEnsemble.from_teacher_folders(teachers).fingerprint()
    make_phase(teachers[0], seed=7, accuracy=0.9)
    after = TeacherEnsemble.from_teacher_folders(teachers).fingerprint()
    assert before != after


def test_posterior_average_is_the_weighted_mean_of_posteriors():
    logits = torch.randn(3, 4, 5)
    probs = torch.softmax(logits, -1)
    weighted = PosteriorAverage([1, 2, 1])(logits).exp()
    assert torch.allclose(
        weighted, (probs[0] + 2 * probs[1] + probs[2]) / 4, atol=1e-6
    )
    equal = PosteriorAverage()(logits).exp()
    assert torch.allclose(equal, probs.mean(0), atol=1e-6)
    # Weights are normalised: scaling them changes nothing.
    assert torch.allclose(
        PosteriorAverage([10, 20, 10])(logits).exp(), weighted, atol=1e-6
    )
    with pytest.raises(ValueError, match="2 weights .* 3 teachers"):
        PosteriorAverage([1, 2])(logits)
    with pytest.raises(ValueError, match="non-negative"):
        PosteriorAverage([1, -1, 1])
    with pytest.raises(ValueError, match="sum to zero"):
        PosteriorAverage([0, 0])


def test_ensemble_is_evaluated_by_the_ordinary_brain(teachers):
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    brain = SceneClassificationBrain(
        modules={"embedding_model": ensemble, "classifier": PosteriorAverage()},
        hparams={},
        run_opts={"device": "cpu"},
    )
    brain.modules.train()  # must not reach the teachers
    batch = PaddedBatch(
        [
            {"id": f"c{i}", "sig": torch.randn(4000, 2), "label_encoded": i}
            for i in range(3)
        ]
    )
    out = brain.compute_forward(batch, sb.Stage.TEST)["logits"]
    wavs, lengths = batch.sig
    expected = torch.softmax(ensemble(wavs, lengths), -1).mean(0)
    assert out.shape == (3, 3)
    assert torch.allclose(out.exp(), expected, atol=1e-6)


def memory_teacher(seed, spec=None, labels=LABELS, rate=RATE):
    """A teacher given in memory (no checkpoint folder)."""
    from speechbrain_kd.checkpoints import TrainedModel

    torch.manual_seed(seed)
    return TrainedModel(
        torch.nn.Identity(),
        torch.nn.Linear(2, len(labels)),
        list(labels),
        rate,
        spec if spec is not None else {"family": "x"},
        None,
    )


def test_ensemble_records_labels_rate_and_checkpoints(tmp_path, teachers):
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    assert ensemble.labels == LABELS and ensemble.sample_rate == RATE
    for name, folder in zip(ensemble.names, teachers, strict=True):
        checkpoint = ensemble.checkpoints[name]
        assert checkpoint == find_best_checkpoint(folder).path
        assert ensemble.folders[name] == str(folder)
    # One folder given as a string is an ensemble of one.
    alone = TeacherEnsemble.from_teacher_folders(str(teachers[0]))
    assert alone.names == ["0:t0"]
    assert TeacherEnsemble({"m": memory_teacher(0)}).checkpoints == {"m": None}


def test_teacher_names_default_to_index_and_folder():
    from speechbrain_kd.teachers import _teacher_name

    assert _teacher_name("runs/baseline", 2) == "2:baseline"
    assert _teacher_name("/", 0) == "0:teacher"  # a folder without a name


def test_fingerprint_follows_names_and_specs_not_key_order():
    def fingerprint(name="t", spec=None):
        return TeacherEnsemble({name: memory_teacher(0, spec)}).fingerprint()

    base = fingerprint(spec={"family": "x", "n": 1})
    assert fingerprint(spec={"n": 1, "family": "x"}) == base
    assert fingerprint(spec={"family": "x", "n": 2}) != base
    assert fingerprint(name="u", spec={"family": "x", "n": 1}) != base


def test_messages_name_what_is_wrong(tmp_path, teachers):
    with pytest.raises(
        ValueError, match="^a teacher ensemble needs at least one teacher$"
    ):
        TeacherEnsemble({})
    odd = make_phase(tmp_path / "odd", 5, labels=["a", "b", "d"])
    with pytest.raises(ValueError) as error:
        TeacherEnsemble.from_teacher_folders([*teachers, odd], labels=LABELS)
    assert str(error.value) == (
        f"teacher '2:odd' ({odd}) does not match the student's labels: the "
        "teacher has ['d'] that it lacks and the teacher lacks ['c']; map "
        "them with teacher_label_map (teacher label -> student label, null "
        "to drop one)"
    )
    with pytest.raises(ValueError) as error:
        TeacherEnsemble.from_teacher_folders([teachers[0], odd, teachers[1]])
    assert str(error.value).startswith(
        f"teacher '1:odd' ({odd}) does not match teacher '0:t0' "
        f"({teachers[0]})'s labels: the teacher has ['d'] that it lacks"
    )
    fast = make_phase(tmp_path / "fast", 5, rate=16000)
    with pytest.raises(ValueError) as error:
        TeacherEnsemble.from_teacher_folders([teachers[0], fast, teachers[1]])
    assert str(error.value) == (
        f"teacher '1:fast' ({fast}) takes 16000 Hz but teacher '0:t0' "
        f"({teachers[0]}) takes {RATE} Hz: teachers must share one "
        "sample rate (or give the ensemble the sample_rate of its input, "
        "to resample per teacher)"
    )


def test_posterior_average_messages():
    with pytest.raises(
        ValueError, match="^PosteriorAverage weights must not be empty$"
    ):
        PosteriorAverage([])
    with pytest.raises(ValueError) as error:
        PosteriorAverage()(torch.randn(4, 5))
    assert str(error.value) == (
        "PosteriorAverage expects teacher logits [K, B, C], got shape (4, 5)"
    )
    with pytest.raises(ValueError) as error:
        PosteriorAverage([1, 2])(torch.randn(3, 4, 5))
    assert str(error.value).endswith(
        "give one weight per teacher (teacher_weights)"
    )
    with pytest.raises(ValueError, match="finite"):
        PosteriorAverage([1, float("inf")])
