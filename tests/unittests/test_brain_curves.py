"""Learning curves and early stopping of a Brain's training phase."""

import csv

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_kd.brain import SceneClassificationBrain
from speechbrain_kd.epochs import LEARNING_CURVE, epoch_counter
from speechbrain_kd.labels import load_or_create_label_encoder
from speechbrain_kd.models import SceneClassifier
from tests.unittests.test_brain import (
    LABELS,
    StatsEmbedding,
    add_pipelines,
    toy_dataset,
)


def make_brain(tmp_path, counter, **hparams):
    """A Brain whose checkpointer holds ``counter``, as the YAMLs do."""
    encoder = load_or_create_label_encoder(tmp_path / "labels.txt", LABELS)
    torch.manual_seed(0)
    modules = {
        "embedding_model": StatsEmbedding(),
        "classifier": SceneClassifier(4, 3),
    }
    checkpointer = Checkpointer(
        tmp_path / "save", {**modules, "counter": counter}
    )
    return SceneClassificationBrain(
        modules=modules,
        opt_class=lambda p: torch.optim.SGD(p, lr=0.05),
        hparams={
            "label_encoder": encoder,
            "epoch_counter": counter,
            "output_folder": str(tmp_path),
            **hparams,
        },
        run_opts={"device": "cpu"},
        checkpointer=checkpointer,
    )


def fit(brain, data):
    brain.fit(
        brain.hparams.epoch_counter,
        data,
        data,
        train_loader_kwargs={"batch_size": 6, "shuffle": True},
        progressbar=False,
    )


def curve(folder):
    with open(folder / LEARNING_CURVE, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def data(tmp_path):
    encoder = load_or_create_label_encoder(tmp_path / "labels.txt", LABELS)
    return add_pipelines(toy_dataset(4, seed=0), encoder)


def test_a_fit_writes_one_curve_row_per_epoch(tmp_path, data):
    brain = make_brain(
        tmp_path,
        epoch_counter(3),
        target_pairs=[["bus", "park"]],
        best_key="pair_accuracy",
    )
    fit(brain, data)
    rows = curve(tmp_path)
    assert list(rows[0]) == [
        "epoch",
        "train_loss",
        "valid_loss",
        "accuracy",
        "pair_accuracy",
        "lr",
    ]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(float(r["train_loss"]) > 0 for r in rows)
    assert all(float(r["lr"]) == 0.05 for r in rows)
    last = brain.checkpointer.find_checkpoint(max_key="epoch").meta
    assert float(rows[-1]["accuracy"]) == last["accuracy"]
    assert float(rows[-1]["pair_accuracy"]) == last["pair_accuracy"]
    assert float(rows[-1]["valid_loss"]) == pytest.approx(
        brain.train_stats["loss"],
        rel=1.0,  # a loss, not the accuracy
    )


def test_a_resumed_fit_keeps_one_row_per_epoch(tmp_path, data):
    # Killed after epoch 3 wrote its row but before its checkpoint was
    # saved: the rerun resumes from epoch 2 and runs epoch 3 again.
    brain = make_brain(tmp_path, epoch_counter(3))
    save = brain.checkpointer.save_and_keep_only

    def killed_at_epoch_3(meta, **kwargs):
        if meta["epoch"] == 3:
            raise KeyboardInterrupt
        save(meta=meta, **kwargs)

    brain.checkpointer.save_and_keep_only = killed_at_epoch_3
    with pytest.raises(KeyboardInterrupt):
        fit(brain, data)
    assert len(curve(tmp_path)) == 3
    again = make_brain(tmp_path, epoch_counter(3))
    fit(again, data)
    rows = curve(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[2]["accuracy"] == str(
        again.checkpointer.find_checkpoint(max_key="epoch").meta["accuracy"]
    )


SCRIPT = [0.5, 0.8, 0.7, 0.6, 0.6, 0.9, 0.9, 0.9]  # best at epoch 2


def scripted(brain, key="accuracy"):
    """Validation ``key`` of epoch e is SCRIPT[e - 1] while fitting.

    Returns the classifier's weights after each validation, by epoch.
    """
    report = brain._report
    weights = {}

    def scripted_report():
        result = report()
        if brain.scripting:
            epoch = brain.hparams.epoch_counter.current
            result[key] = SCRIPT[epoch - 1]
            weights[epoch] = brain.modules.classifier.state_dict()
            weights[epoch] = {k: v.clone() for k, v in weights[epoch].items()}
        return result

    brain._report = scripted_report
    brain.scripting = True
    return weights


def test_early_stopping_stops_and_evaluates_the_best(tmp_path, data):
    brain = make_brain(tmp_path, epoch_counter(8, patience=2))
    weights = scripted(brain)
    fit(brain, data)
    assert sorted(weights) == [1, 2, 3, 4]  # stopped 2 epochs after 2
    assert len(curve(tmp_path)) == 4
    brain.scripting = False
    results = brain.evaluate_split(data, "test", progressbar=False)
    assert results["checkpoint_epoch"] == 2
    for name, value in brain.modules.classifier.state_dict().items():
        assert torch.equal(value, weights[2][name])
        assert not torch.equal(value, weights[4][name])


def test_a_plateau_stops_training(tmp_path, data, monkeypatch):
    # An epoch that equals the best is no improvement (SpeechBrain 1.1.2
    # counts it as one with direction max, and never stops on a plateau).
    monkeypatch.setattr(
        "tests.unittests.test_brain_curves.SCRIPT", [0.5, 0.8, 0.8, 0.8, 0.9]
    )
    brain = make_brain(tmp_path, epoch_counter(5, patience=2))
    weights = scripted(brain)
    fit(brain, data)
    assert sorted(weights) == [1, 2, 3, 4]
    brain.scripting = False
    results = brain.evaluate_split(data, "test", progressbar=False)
    # Of equal checkpoints SpeechBrain keeps and loads the latest.
    assert results["checkpoint_epoch"] == 4


def test_a_specialist_stops_on_its_pair_accuracy(tmp_path, data):
    brain = make_brain(
        tmp_path,
        epoch_counter(8, patience=2),
        target_pairs=[["bus", "park"]],
        best_key="pair_accuracy",
    )
    weights = scripted(brain, key="pair_accuracy")
    report = brain._report

    def rising_accuracy():  # overall accuracy improves every epoch
        result = report()
        result["accuracy"] = brain.hparams.epoch_counter.current / 10
        return result

    brain._report = rising_accuracy
    fit(brain, data)
    assert sorted(weights) == [1, 2, 3, 4]
    brain.scripting = False
    assert (
        brain.evaluate_split(data, "test", progressbar=False)[
            "checkpoint_epoch"
        ]
        == 2
    )


def test_warmup_delays_the_stop(tmp_path, data):
    brain = make_brain(tmp_path, epoch_counter(8, patience=2, warmup=3))
    weights = scripted(brain)
    fit(brain, data)
    # Counting starts after epoch 3: best 4 (0.6), then 6 (0.9), stop at 8.
    assert sorted(weights) == list(range(1, 9))


def test_a_resumed_stopper_keeps_its_best_and_its_decision(tmp_path, data):
    first = make_brain(tmp_path, epoch_counter(3, patience=2))
    scripted(first)
    fit(first, data)  # epochs 1-3 (best 2), then killed
    second = make_brain(tmp_path, epoch_counter(8, patience=2))
    ran = scripted(second)
    fit(second, data)
    assert sorted(ran) == [4]  # it knew epoch 2 was the best
    third = make_brain(tmp_path, epoch_counter(8, patience=2))
    ran = scripted(third)
    fit(third, data)  # rerun of a phase that stopped: no more epochs
    assert ran == {}
    assert third.hparams.epoch_counter.current == 4
    assert [int(r["epoch"]) for r in curve(tmp_path)] == [1, 2, 3, 4]


def test_a_plain_counter_runs_every_epoch(tmp_path, data):
    brain = make_brain(tmp_path, epoch_counter(6))
    ran = scripted(brain)
    fit(brain, data)
    assert sorted(ran) == list(range(1, 7))


@pytest.mark.parametrize(
    "direction,hparams,message",
    [
        ("min", {}, "direction is 'min'.*set direction: max"),
        (
            "max",
            {"best_key": "pair_accuracy"},
            "best_key 'pair_accuracy' is not a validation metric",
        ),
    ],
)
def test_a_stopper_that_cannot_work_is_refused(
    tmp_path, data, direction, hparams, message
):
    counter = epoch_counter(3, patience=1)
    counter.direction = direction
    brain = make_brain(tmp_path, counter, **hparams)
    with pytest.raises(ValueError, match=message):
        fit(brain, data)


def test_speechbrains_stopper_that_forgets_its_best_is_refused(tmp_path, data):
    from speechbrain.utils.epoch_loop import EpochCounterWithStopper

    brain = make_brain(tmp_path, EpochCounterWithStopper(3, 1, 0, "max"))
    with pytest.raises(ValueError, match="checkpoints the epoch only"):
        fit(brain, data)


def test_a_plain_counters_checkpoint_resumes_with_a_stopper(tmp_path, data):
    fit(make_brain(tmp_path, epoch_counter(3)), data)
    again = make_brain(tmp_path, epoch_counter(8, patience=2))
    ran = scripted(again)
    fit(again, data)
    # Patience counts from the resumed epoch 3: best 4 (0.6), then 6, 8.
    assert sorted(ran) == [4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    "patience,warmup,message",
    [
        (0, 0, "patience must be an int >= 1, or null .*got 0"),
        (1.5, 0, "patience must be .*got 1.5"),
        (2, -1, "patience_warmup must be an int >= 0; got -1"),
    ],
)
def test_settings_that_cannot_stop_well_are_refused(patience, warmup, message):
    with pytest.raises(ValueError, match=message):
        epoch_counter(10, patience, warmup)
