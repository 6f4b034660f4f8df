"""The Brain hooks: optimisers, mixup schedule, learning, results files."""

import json

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter

from speechbrain_kd.brain import DistillationBrain, SceneClassificationBrain
from speechbrain_kd.labels import load_or_create_label_encoder
from speechbrain_kd.losses import CenterLoss, DistillationLoss
from speechbrain_kd.models import SceneClassifier

LABELS = ["bus", "park", "tram"]


class StatsEmbedding(torch.nn.Module):
    """Mean and spread of the waveform: enough to tell the toy classes."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Linear(2, 4)

    def forward(self, wavs, lengths=None):
        stats = torch.stack([wavs.mean((1, 2)), wavs.std((1, 2))], dim=1)
        return self.scale(stats)


def toy_dataset(n_per_class, seed):
    """Class k: Gaussian noise with mean k - 1 and spread 0.3."""
    generator = torch.Generator().manual_seed(seed)
    data = {}
    for k, label in enumerate(LABELS):
        for i in range(n_per_class):
            wav = (k - 1) + 0.3 * torch.randn(64, 2, generator=generator)
            data[f"{label}-{i}"] = {"wav": wav, "scene": label}
    dataset = DynamicItemDataset(data)
    return dataset


def make_brain(tmp_path, brain_class=SceneClassificationBrain, **hparams):
    encoder = load_or_create_label_encoder(tmp_path / "labels.txt", LABELS)
    modules = {
        "embedding_model": StatsEmbedding(),
        "classifier": SceneClassifier(4, 3),
        "center_loss": CenterLoss(3, 4, weight=0.01),
    }
    counter = EpochCounter(hparams.pop("epochs", 1))
    checkpointer = Checkpointer(
        tmp_path / "save", {**modules, "counter": counter}
    )
    return brain_class(
        modules=modules,
        opt_class=lambda p: torch.optim.Adam(p, lr=0.05),
        hparams={
            "center_opt_class": lambda p: torch.optim.SGD(p, lr=0.5),
            "label_encoder": encoder,
            "epoch_counter": counter,
            "output_folder": str(tmp_path),
            **hparams,
        },
        run_opts={"device": "cpu"},
        checkpointer=checkpointer,
    )


def add_pipelines(dataset, encoder, *more_keys):
    """``dataset`` with ``sig`` and ``label_encoded``; outputs ``id``, those
    two and ``more_keys``."""

    @sb.utils.data_pipeline.takes("wav", "scene")
    @sb.utils.data_pipeline.provides("sig", "label_encoded")
    def pipeline(wav, scene):
        yield wav
        yield encoder.encode_label_torch(scene)

    dataset.add_dynamic_item(pipeline)
    dataset.set_output_keys(["id", "sig", "label_encoded", *more_keys])
    return dataset


def test_centers_have_their_own_optimiser(tmp_path):
    brain = make_brain(tmp_path)
    brain.init_optimizers()
    centers = brain.modules.center_loss.centers
    assert set(brain.optimizers_dict) == {"opt_class", "center_opt_class"}
    main_params = [p for g in brain.optimizer.param_groups for p in g["params"]]
    assert all(p is not centers for p in main_params)
    assert brain.center_optimizer.param_groups[0]["params"][0] is centers
    assert isinstance(brain.center_optimizer, torch.optim.SGD)


@pytest.mark.parametrize("current,active", [(2, False), (3, True), (4, True)])
def test_mixup_starts_at_its_epoch(tmp_path, current, active):
    brain = make_brain(tmp_path, mixup_alpha=0.2, mixup_start_epoch=3)
    brain.hparams.epoch_counter.current = current
    assert brain._mixup_active() is active


def test_mixed_loss_weights_both_targets(tmp_path):
    brain = make_brain(tmp_path)
    logits = torch.randn(4, 3)
    a, b = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2])
    loss = brain.training_loss({"logits": logits, "mix": (b, 0.3)}, None, a)
    expected = 0.3 * torch.nn.functional.cross_entropy(logits, a)
    expected += 0.7 * torch.nn.functional.cross_entropy(logits, b)
    assert torch.allclose(loss, expected)


def test_learns_toy_scenes_and_writes_results(tmp_path):
    brain = make_brain(
        tmp_path,
        epochs=15,
        target_pairs=[["bus", "park"]],
        best_key="pair_accuracy",
    )
    encoder = brain.hparams.label_encoder
    train = add_pipelines(toy_dataset(12, seed=0), encoder)
    test = add_pipelines(toy_dataset(6, seed=1), encoder)
    centers_before = brain.modules.center_loss.centers.detach().clone()
    fit_quietly(brain, train, test, batch_size=6, shuffle=True)
    results = brain.evaluate_split(test, "test", progressbar=False)
    assert results["accuracy"] >= 0.9
    assert not torch.allclose(brain.modules.center_loss.centers, centers_before)
    written = json.loads((tmp_path / "test_results.json").read_text())
    assert written["labels"] == LABELS
    assert written["pair_errors"] == {
        "bus/park": results["pair_errors"]["bus/park"]
    }
    assert sum(map(sum, written["confusion_matrix"])) == 18
    assert written["pair_accuracy"] >= 0.9  # bus and park clips only
    rows = (tmp_path / "test_predictions.csv").read_text().splitlines()
    assert rows[0].split(",") == ["ID", "target", "prediction", *LABELS]
    assert len(rows) == 19


def test_distillation_learns_from_teacher_alone(tmp_path):
    """Labels are wrong on purpose: only the teacher knows the classes."""

    class OracleTeacher:
        def teacher_logits(self, batch):
            truth = torch.tensor([int(i.split("-")[1]) for i in batch.id])
            return 5 * torch.nn.functional.one_hot(truth, 3).float()[None]

    brain = make_brain(
        tmp_path,
        DistillationBrain,
        epochs=15,
        kd_loss=DistillationLoss(temperature=2.0),
        soft_labels=OracleTeacher(),
    )
    encoder = brain.hparams.label_encoder
    train = toy_dataset(12, seed=0)
    # Rename clips as "<wrong label>-<true index>" and give every clip "bus".
    data = {
        f"x{i}-{LABELS.index(row['scene'])}": {**row, "scene": "bus"}
        for i, row in enumerate(train.data.values())
    }
    train = add_pipelines(DynamicItemDataset(data), encoder)
    test = add_pipelines(toy_dataset(6, seed=1), encoder)
    fit_quietly(brain, train, test, batch_size=6, shuffle=True)
    assert (
        brain.evaluate_split(test, "test", progressbar=False)["accuracy"] >= 0.9
    )


def fit_quietly(brain, train, valid=None, **loader):
    """``brain.fit`` over its epoch counter, loader options ``loader``."""
    brain.fit(
        brain.hparams.epoch_counter,
        train,
        valid,
        train_loader_kwargs=loader,
        progressbar=False,
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_input_stops_training_naming_the_clip(tmp_path, bad):
    brain = make_brain(tmp_path)
    data = toy_dataset(4, seed=0)
    data.data["park-2"]["wav"][10, 1] = bad
    train = add_pipelines(data, brain.hparams.label_encoder)
    with pytest.raises(FloatingPointError) as error:
        fit_quietly(brain, train, batch_size=6)
    message = str(error.value)
    assert "train loss is nan at epoch 1, step" in message
    assert "NaN or infinite samples: park-2 (sig)" in message
    assert message.count("(sig)") == 1


def test_nonfinite_evaluation_input_is_named(tmp_path):
    brain = make_brain(tmp_path)
    encoder = brain.hparams.label_encoder
    valid = toy_dataset(2, seed=1)
    valid.data["tram-1"]["wav"][0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"valid loss is nan.*tram-1"):
        fit_quietly(
            brain,
            add_pipelines(toy_dataset(4, seed=0), encoder),
            add_pipelines(valid, encoder),
            batch_size=6,
        )


def test_diverging_training_stops_naming_the_batch(tmp_path):
    brain = make_brain(tmp_path)
    train = add_pipelines(toy_dataset(4, seed=0), brain.hparams.label_encoder)
    # Weights that have overflowed: finite inputs, a non-finite loss (large
    # finite weights overflow only when the random embeddings are large).
    with torch.no_grad():
        brain.modules.classifier.linear.weight.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="inputs are finite") as error:
        fit_quietly(brain, train, batch_size=6)
    assert "the batch: [" in str(error.value)


def test_gain_jitter_scales_training_clips_only(tmp_path):
    brain = make_brain(tmp_path, gain_jitter_db=6.0)
    seen = []
    brain.modules.embedding_model.forward = lambda wavs, lengths=None: (
        seen.append(wavs) or torch.zeros(len(wavs), 4)
    )
    train = add_pipelines(toy_dataset(8, seed=0), brain.hparams.label_encoder)
    batch = sb.dataio.batch.PaddedBatch([train[i] for i in range(24)])
    brain.compute_forward(batch, sb.Stage.TRAIN)
    brain.compute_forward(batch, sb.Stage.VALID)
    trained, evaluated = seen
    assert torch.equal(evaluated, batch.sig.data)
    gains = (trained / batch.sig.data).flatten(1)
    # One gain per clip, within +-6 dB, not all the same.
    assert torch.allclose(gains, gains[:, :1].expand_as(gains), rtol=1e-5)
    assert (gains[:, 0] >= 10 ** (-6 / 20) - 1e-6).all()
    assert (gains[:, 0] <= 10 ** (6 / 20) + 1e-6).all()
    assert gains[:, 0].std() > 0.1


def test_student_averages_teachers_it_cannot_tell_apart(tmp_path):
    """KL(teacher || student), as in Hinton et al. and the paper: where
    two clips are the same audio but their teachers disagree, the student
    learns the average of the two softened posteriors. The reversed KL
    (student || teacher) would give their normalised geometric mean,
    which puts most of the mass on the class both give 0.1 to."""
    temperature = 2.0
    # (first, second, third class) at T for the two copies of a clip.
    views = torch.tensor([[0.9, 0.0999, 1e-4], [1e-4, 0.0999, 0.9]])

    class DisagreeingTeacher:
        def teacher_logits(self, batch):
            copy = torch.tensor([int(i.split("-")[-1]) for i in batch.id])
            return (temperature * views[copy].log())[None]

    brain = make_brain(
        tmp_path,
        DistillationBrain,
        epochs=20,
        kd_loss=DistillationLoss(temperature=temperature),
        soft_labels=DisagreeingTeacher(),
    )
    encoder = brain.hparams.label_encoder
    audio = toy_dataset(4, seed=0).data
    data = {
        f"{name}-{copy}": row for name, row in audio.items() for copy in (0, 1)
    }
    train = add_pipelines(DynamicItemDataset(data), encoder)
    fit_quietly(brain, train, batch_size=6, shuffle=True)
    brain.modules.eval()
    batch = sb.dataio.batch.PaddedBatch([train[i] for i in range(len(train))])
    with torch.no_grad():
        logits = brain.compute_forward(batch, sb.Stage.TEST)["logits"]
    posterior = torch.softmax(logits / temperature, dim=-1).mean(0)
    # Average: [0.45, 0.1, 0.45]; geometric mean: [0.08, 0.84, 0.08].
    assert torch.allclose(posterior, views.mean(0), atol=0.08), posterior
