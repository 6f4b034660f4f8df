"""The specialist step of Jung et al. (IEEE Access 2020) on data where the
answer is known: fine-tuning a baseline on pair-focused batches (half the
batch from the target pair) cuts the errors inside the pair by a margin
that the same number of steps on shuffled batches does not reach.

The toy makes the pair compete for capacity, as scenes do in a real
network: the scenes differ in the mean of channel 0, the two target scenes
only in the mean of channel 1, and the model sees both through a single
learned projection. Trained on all scenes alike, the projection serves the
six others; weighting the pair (the specialist's batches) turns it towards
the pair's channel.
"""

import copy

import numpy as np
import pytest
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.epoch_loop import EpochCounter

from speechbrain_kd.brain import SceneClassificationBrain
from speechbrain_kd.labels import load_or_create_label_encoder
from speechbrain_kd.metrics import confusion_matrix
from speechbrain_kd.models import SceneClassifier
from speechbrain_kd.pairs import pair_errors
from speechbrain_kd.samplers import PairFocusedBatchSampler
from tests.unittests.test_brain import add_pipelines

# Mean of (channel 0, channel 1) of each scene; "a" and "b" are the pair.
CENTRES = {
    "a": (0.0, -1.0),
    "b": (0.0, 1.0),
    "c": (-3.0, 0.0),
    "d": (-2.0, 0.0),
    "e": (-1.0, 0.0),
    "f": (1.0, 0.0),
    "g": (2.0, 0.0),
    "h": (3.0, 0.0),
}
LABELS = sorted(CENTRES)
PAIR = ["a", "b"]
BATCH = 16


class OneProjection(torch.nn.Module):
    """Channel means -> one learned number z -> embedding (z, z^2, 1)."""

    def __init__(self):
        super().__init__()
        self.projection = torch.nn.Linear(2, 1)

    def forward(self, wavs, lengths=None):
        z = self.projection(wavs.mean(dim=1))
        return torch.cat([z, z * z, torch.ones_like(z)], dim=1)


def scenes(clips_per_scene, seed, encoder):
    generator = torch.Generator().manual_seed(seed)
    data = {}
    for scene, centre in CENTRES.items():
        for i in range(clips_per_scene):
            noise = torch.randn(16, 2, generator=generator)
            data[f"{scene}-{i}"] = {
                "wav": torch.tensor(centre) + noise,
                "scene": scene,
            }
    return add_pipelines(DynamicItemDataset(data), encoder, "scene")


def fit(modules, folder, train, epochs, lr, loader_kwargs):
    encoder = load_or_create_label_encoder(folder / "labels.txt", LABELS)
    brain = SceneClassificationBrain(
        modules=modules,
        opt_class=lambda params: torch.optim.Adam(params, lr=lr),
        hparams={
            "label_encoder": encoder,
            "epoch_counter": EpochCounter(epochs),
            "output_folder": str(folder),
        },
        run_opts={"device": "cpu"},
    )
    brain.fit(
        brain.hparams.epoch_counter, train, train_loader_kwargs=loader_kwargs
    )
    return modules


def errors_in_pair(modules, test):
    targets, predictions = [], []
    with torch.no_grad():
        for item in test:
            logits = modules["classifier"](
                modules["embedding_model"](item["sig"][None])
            )
            targets.append(int(item["label_encoded"]))
            predictions.append(int(logits.argmax()))
    matrix = confusion_matrix(np.array(targets), np.array(predictions), 8)
    return pair_errors(matrix, LABELS, PAIR)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_focused_batches_cut_pair_errors_that_shuffled_do_not(
    tmp_path, seed
):
    torch.manual_seed(seed)
    encoder = load_or_create_label_encoder(tmp_path / "labels.txt", LABELS)
    train = scenes(32, 100 + seed, encoder)
    test = scenes(64, 200 + seed, encoder)
    shuffled = {"batch_size": BATCH, "shuffle": True}
    baseline = fit(
        {
            "embedding_model": OneProjection(),
            "classifier": SceneClassifier(3, 8),
        },
        tmp_path,
        train,
        epochs=30,
        lr=0.02,
        loader_kwargs=shuffled,
    )
    sampler = PairFocusedBatchSampler.from_dataset(
        train, "scene", PAIR, BATCH, seed=seed
    )
    # Equal steps: a pair-focused epoch is 2 x 32 pair clips, half a
    # shuffled one (8 x 32 clips).
    assert len(sampler) * 2 == len(train) // BATCH
    specialist = fit(
        copy.deepcopy(baseline),
        tmp_path,
        train,
        epochs=20,
        lr=0.01,
        loader_kwargs={"batch_sampler": sampler},
    )
    plain = fit(
        copy.deepcopy(baseline),
        tmp_path,
        train,
        epochs=10,
        lr=0.01,
        loader_kwargs=shuffled,
    )
    before = errors_in_pair(baseline, test)
    focused, unfocused = (
        errors_in_pair(specialist, test),
        errors_in_pair(plain, test),
    )
    assert before >= 10  # the baseline confuses the pair
    assert focused <= 0.75 * unfocused, (before, focused, unfocused)
    assert focused <= 0.75 * before, (before, focused, unfocused)
