"""What a Brain's evaluation writes and logs: the results file, the
predictions, the plots, the training log, the checkpoints' metadata and
the learning-rate schedule, checked against what the predictions give."""

import csv
import json
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.train_logger import FileTrainLogger

from speechbrain_kd.metrics import confusion_matrix
from speechbrain_kd.pairs import pair_errors
from tests.unittests.test_brain import (
    LABELS,
    add_pipelines,
    fit_quietly,
    make_brain,
    toy_dataset,
)

PAIR = ["bus", "park"]


@pytest.fixture
def evaluated(tmp_path, monkeypatch):
    """A 3-epoch run with a target pair, then valid and test evaluations.

    One per test (a second): a module-wide run would be credited to the
    first test alone by the mutation tool's coverage, which then runs only
    that test against a mutant of what the others check.
    """
    baseline = tmp_path / "baseline_results.json"
    # A baseline that put 3 bus clips in park and 1 park clip in bus.
    baseline.write_text(
        json.dumps(
            {
                "labels": LABELS,
                "confusion_matrix": [[1, 3, 0], [1, 5, 0], [0, 0, 6]],
            }
        )
    )
    log = tmp_path / "train_log.txt"
    brain = make_brain(
        tmp_path,
        epochs=3,
        target_pairs=[PAIR],
        best_key="pair_accuracy",
        baseline_results=str(baseline),
        accuracy_by=["device", "absent"],
        train_logger=FileTrainLogger(log),
        lr_annealing=sb.nnet.schedulers.StepScheduler(0.05, 0.5, 1),
    )
    encoder = brain.hparams.label_encoder
    train = add_pipelines(toy_dataset(8, seed=0), encoder)
    test = add_pipelines(toy_dataset(6, seed=1), encoder)
    for k, row in enumerate(test.data.values()):
        row["device"] = "ab"[k % 2]
    import speechbrain_kd.brain as brain_module

    plots = []
    plot = brain_module.plot_confusion_matrix

    def recorded_plot(matrix, labels, path, **options):
        plots.append((Path(path).name, options))
        return plot(matrix, labels, path, **options)

    monkeypatch.setattr(brain_module, "plot_confusion_matrix", recorded_plot)
    lrs = []
    step = brain.on_stage_end

    def on_stage_end(stage, loss, epoch=None):
        step(stage, loss, epoch)
        if stage == sb.Stage.VALID:
            lrs.append(brain.optimizer.param_groups[0]["lr"])

    brain.on_stage_end = on_stage_end
    fit_quietly(brain, train, test, batch_size=6, shuffle=True)
    results = {
        split: brain.evaluate_split(test, split, progressbar=False)
        for split in ("valid", "test")
    }
    return {
        "folder": tmp_path,
        "brain": brain,
        "results": results,
        "lrs": lrs,
        "log": log.read_text(),
        "test": test,
        "plots": plots,
    }


def loaded_checkpoint(brain):
    """The checkpoint an evaluation loads: the best by the best key."""
    return brain.checkpointer.find_checkpoint(max_key=brain.best_key)


def predictions_of(folder, split):
    with open(folder / f"{split}_predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_results_agree_with_the_predictions(evaluated):
    folder = evaluated["folder"]
    rows = predictions_of(folder, "test")
    assert [r["ID"] for r in rows] == list(evaluated["test"].data)
    targets = [LABELS.index(r["target"]) for r in rows]
    predicted = [LABELS.index(r["prediction"]) for r in rows]
    for row in rows:
        posteriors = [float(row[label]) for label in LABELS]
        assert sum(posteriors) == pytest.approx(1.0, abs=1e-4)
        assert row["prediction"] == LABELS[int(np.argmax(posteriors))]
        assert row["target"] == row["ID"].split("-")[0]
    written = json.loads((folder / "test_results.json").read_text())
    assert written == evaluated["results"]["test"]
    matrix = confusion_matrix(np.array(targets), np.array(predicted), 3)
    assert written["confusion_matrix"] == matrix.tolist()
    assert written["n_clips"] == 18 and written["labels"] == LABELS
    assert written["accuracy"] == pytest.approx(np.trace(matrix) / 18)
    assert written["pair_errors"] == {
        "bus/park": pair_errors(matrix, LABELS, PAIR)
    }
    in_pair = [t == p for t, p in zip(targets, predicted, strict=True) if t < 2]
    assert written["pair_accuracy"] == pytest.approx(sum(in_pair) / 12)
    assert written["baseline_pair_errors"] == {"bus/park": 4}
    assert written["split"] == "test"
    # The epoch of the best checkpoint, the one loaded to test.
    best = loaded_checkpoint(evaluated["brain"])
    assert written["checkpoint_epoch"] == best.meta["epoch"]
    # Per device (the column every clip has); "absent" is left out.
    devices = ["ab"[k % 2] for k in range(18)]
    assert set(written["accuracy_by"]) == {"device"}
    for device in "ab":
        hits = [
            t == p
            for t, p, d in zip(targets, predicted, devices, strict=True)
            if d == device
        ]
        assert written["accuracy_by"]["device"][device] == {
            "accuracy": pytest.approx(sum(hits) / len(hits)),
            "n_clips": len(hits),
        }


def test_each_split_has_its_files(evaluated):
    folder = evaluated["folder"]
    valid = json.loads((folder / "valid_results.json").read_text())
    assert valid["split"] == "valid"
    assert (folder / "valid_confusion_matrix.png").is_file()
    assert (folder / "confusion_matrix.png").is_file()  # the test split's
    assert not (folder / "test_confusion_matrix.png").exists()
    assert evaluated["brain"].last_results == evaluated["results"]["test"]

    def title(split):
        percent = 100 * evaluated["results"][split]["accuracy"]
        return f"{folder.name}: {split} accuracy {percent:.1f} %"

    assert evaluated["plots"] == [
        (f"{split_file}", {"title": title(split), "highlight_pairs": [PAIR]})
        for split, split_file in (
            ("valid", "valid_confusion_matrix.png"),
            ("test", "confusion_matrix.png"),
        )
    ]


def test_training_log_has_every_epoch_and_the_test(evaluated):
    lines = evaluated["log"].splitlines()
    assert len(lines) == 5  # 3 epochs, then valid and test evaluations
    for epoch, line in enumerate(lines[:3], start=1):
        assert line.startswith(f"epoch: {epoch}, lr: ")
        assert " - train loss: " in line
        assert "valid loss: " in line and "valid accuracy: " in line
        assert "valid pair_accuracy: " in line
    best = loaded_checkpoint(evaluated["brain"])
    loaded = f"epoch loaded: {best.meta['epoch']}"
    assert lines[3].startswith(f"{loaded}, split: valid - test loss: ")
    assert lines[4].startswith(f"{loaded}, split: test - test loss: ")
    assert "test accuracy: " in lines[4] and "test pair_accuracy" in lines[4]


def test_learning_rate_follows_the_annealing(evaluated):
    schedule = sb.nnet.schedulers.StepScheduler(0.05, 0.5, 1)
    expected = [schedule(epoch)[1] for epoch in (1, 2, 3)]
    assert len(set(expected)) == 3  # it does change
    assert evaluated["lrs"] == pytest.approx(expected)
    for line, lr in zip(evaluated["log"].splitlines(), expected, strict=False):
        assert f"lr: {lr:.2e}" in line


def test_checkpoints_keep_the_best_by_the_best_key(evaluated):
    brain = evaluated["brain"]
    checkpoints = brain.checkpointer.list_checkpoints()
    # The best by pair accuracy, and the latest when it is another one.
    assert 1 <= len(checkpoints) <= 2
    latest = max(c.meta["epoch"] for c in checkpoints)
    assert latest == 3
    meta = loaded_checkpoint(brain).meta
    assert set(meta) >= {"accuracy", "pair_accuracy", "epoch"}
    assert all("loss" not in c.meta for c in checkpoints)
    # The loaded one has the best validation pair accuracy of the log.
    logged = [
        float(x)
        for x in re.findall(
            r"valid pair_accuracy: ([\d.e+-]+)", evaluated["log"]
        )
    ]
    assert len(logged) == 3 and meta["pair_accuracy"] == pytest.approx(
        max(logged), rel=1e-3
    )


def test_evaluation_logs_where_results_went(tmp_path, caplog):
    brain = make_brain(tmp_path, epochs=1)
    with torch.no_grad():  # every clip predicted "park": accuracy 1/3
        brain.modules.embedding_model.scale.weight.zero_()
        brain.modules.embedding_model.scale.bias.fill_(1.0)
        brain.modules.classifier.linear.weight.zero_()
        brain.modules.classifier.linear.weight[LABELS.index("park")] = 1.0
    test = add_pipelines(toy_dataset(2, seed=1), brain.hparams.label_encoder)
    with caplog.at_level(logging.INFO, "speechbrain_kd.brain"):
        results = brain.evaluate_split(test, "test", progressbar=False)
    assert results["accuracy"] == pytest.approx(1 / 3)
    assert (
        f"test accuracy 33.33 % written to {tmp_path / 'test_results.json'}"
    ) in [r.getMessage() for r in caplog.records]
    # No target pair: no pair fields; no accuracy_by setting: none.
    assert "pair_errors" not in results and "pair_accuracy" not in results
    assert (
        "accuracy_by" not in results and "baseline_pair_errors" not in results
    )
    assert results["checkpoint_epoch"] == 0


def test_checkpointed_run_keeps_every_recoverable(tmp_path):
    brain = make_brain(tmp_path, epochs=1)
    keys = set(brain.checkpointer.recoverables)
    encoder = brain.hparams.label_encoder
    train = add_pipelines(toy_dataset(4, seed=0), encoder)
    fit_quietly(brain, train, train, batch_size=4)
    added = set(brain.checkpointer.recoverables) - keys
    assert added == {
        "optimizer",
        "center_optimizer",
        "rng_state",
        "dataloader-TRAIN",
    }
    assert isinstance(brain.checkpointer, Checkpointer)
    assert brain.center_optimizer.param_groups[0]["lr"] == 0.5
    centers = {id(p) for p in brain.modules.center_loss.parameters()}
    network = {id(p) for g in brain.optimizer.param_groups for p in g["params"]}
    assert centers and not centers & network
    assert len(network) == sum(
        1
        for name, p in brain.modules.named_parameters()
        if not name.startswith("center_loss")
    )
    assert torch.is_tensor(next(iter(brain.modules.center_loss.parameters())))


def toy_batch(brain, n=8, seed=0):
    data = add_pipelines(toy_dataset(n, seed), brain.hparams.label_encoder)
    return sb.dataio.batch.PaddedBatch([data[i] for i in range(len(data))])


def record_model_inputs(brain):
    """``[(waveforms, lengths), ...]`` the embedding model receives."""
    calls = []
    forward = brain.modules.embedding_model.forward

    def record(wavs, lengths=None):
        calls.append((wavs, lengths))
        return forward(wavs, lengths)

    brain.modules.embedding_model.forward = record
    return calls


def test_mixed_batch_and_its_center_loss(tmp_path):
    brain = make_brain(tmp_path, mixup_alpha=0.4, mixup_start_epoch=0)
    batch = toy_batch(brain)
    wavs, _ = batch.sig
    targets = batch.label_encoded.data.view(-1)
    torch.manual_seed(3)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    targets_b, lam = out["mix"]
    # The mixed clips are lam * clip + (1 - lam) * its partner's clip.
    partner = [int((targets == t).nonzero()[0]) for t in targets_b]
    assert 0 < lam < 1 and not torch.equal(targets_b, targets)
    recorded = record_model_inputs(brain)
    torch.manual_seed(3)
    brain.compute_forward(batch, sb.Stage.TRAIN)
    mixed = recorded[0][0]
    for i, j in enumerate(partner):
        expected = lam * wavs[i] + (1 - lam) * wavs[j]
        if targets_b[i] == targets[j] and torch.allclose(mixed[i], expected):
            break
    else:
        raise AssertionError("no clip is the mix of itself and a partner")
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    ce = torch.nn.functional.cross_entropy
    center = brain.modules.center_loss
    emb, logits = out["embeddings"], out["logits"]
    expected = lam * ce(logits, targets) + (1 - lam) * ce(logits, targets_b)
    expected = expected + lam * center(emb, targets)
    expected = expected + (1 - lam) * center(emb, targets_b)
    assert torch.allclose(loss, expected)


def test_unmixed_loss_adds_the_center_loss(tmp_path):
    brain = make_brain(tmp_path)
    batch = toy_batch(brain)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert out["mix"] is None  # no mixup_alpha: no mixing
    targets = batch.label_encoded.data.view(-1)
    expected = torch.nn.functional.cross_entropy(out["logits"], targets)
    expected = expected + brain.modules.center_loss(out["embeddings"], targets)
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    assert torch.allclose(loss, expected)


def test_the_model_gets_the_relative_lengths(tmp_path):
    brain = make_brain(tmp_path)
    recorded = record_model_inputs(brain)
    batch = sb.dataio.batch.PaddedBatch(
        [
            {"id": "a", "sig": torch.zeros(64, 2), "label_encoded": 0},
            {"id": "b", "sig": torch.zeros(32, 2), "label_encoded": 1},
        ]
    )
    brain.compute_forward(batch, sb.Stage.VALID)
    assert recorded[0][1].tolist() == [1.0, 0.5]


def test_mixup_defaults(tmp_path):
    brain = make_brain(tmp_path, mixup_alpha=0.2)  # no start epoch: at once
    assert brain._mixup_active()
    brain = make_brain(tmp_path, mixup_alpha=0.2, mixup_start_epoch=1)
    del brain.hparams.epoch_counter  # no counter: epoch 0
    assert not brain._mixup_active()
    assert not make_brain(tmp_path)._mixup_active()  # no alpha: never


def test_gain_draws_come_from_torch_and_span_the_range(tmp_path):
    brain = make_brain(tmp_path, gain_jitter_db=6.0)
    wavs = torch.ones(4000, 3, 2)
    torch.manual_seed(11)
    scaled = brain._random_gain(wavs)
    torch.manual_seed(11)
    gains_db = torch.empty(4000).uniform_(-6.0, 6.0)
    expected = 10.0 ** (gains_db / 20.0)
    assert torch.allclose(scaled[:, 0, 0], expected)
    assert scaled.shape == wavs.shape
    assert torch.equal(scaled[:, 1:, :], scaled[:, :1, :].expand(-1, 2, 2))
    measured_db = 20 * torch.log10(scaled[:, 0, 0])
    assert measured_db.max() > 5.9 and measured_db.min() < -5.9
    unchanged = make_brain(tmp_path)._random_gain(wavs)  # no setting
    assert unchanged is wavs


def test_optimisers_without_center_rate_or_checkpointer(tmp_path):
    brain = make_brain(tmp_path)
    del brain.hparams.center_opt_class  # centers follow opt_class
    brain.init_optimizers()
    params = {id(p) for g in brain.optimizer.param_groups for p in g["params"]}
    assert id(brain.modules.center_loss.centers) in params
    assert not hasattr(brain, "center_optimizer")
    bare = make_brain(tmp_path / "bare")
    bare.checkpointer = None
    train = add_pipelines(toy_dataset(4, 0), bare.hparams.label_encoder)
    fit_quietly(bare, train, batch_size=4)
    assert isinstance(bare.center_optimizer, torch.optim.SGD)


def test_train_loader_has_the_brain_generator_and_samplers(tmp_path):
    from speechbrain_kd.samplers import PairFocusedBatchSampler

    brain = make_brain(tmp_path)
    data = add_pipelines(toy_dataset(4, 0), brain.hparams.label_encoder)
    train = brain.make_dataloader(data, sb.Stage.TRAIN, batch_size=2)
    valid = brain.make_dataloader(data, sb.Stage.VALID, batch_size=2)
    assert train.generator is brain._train_loader_generator()
    assert valid.generator is not brain._train_loader_generator()
    # Shuffled batches: SpeechBrain's own reproducible sampler.
    brain.make_dataloader(data, sb.Stage.TRAIN, batch_size=2, shuffle=True)
    assert isinstance(
        brain.train_sampler, sb.dataio.sampler.ReproducibleRandomSampler
    )
    # A pair-focused sampler is used as it is.
    sampler = PairFocusedBatchSampler.from_dataset(data, "scene", PAIR, 2)
    loader = brain.make_dataloader(data, sb.Stage.TRAIN, batch_sampler=sampler)
    assert brain.train_sampler is sampler and loader.batch_sampler is sampler


def test_clip_draws_learn_the_training_epochs(tmp_path):
    from speechbrain_kd.dataio import ClipDraws

    draws = ClipDraws(1)
    told = []
    set_epoch = draws.set_epoch
    draws.set_epoch = lambda epoch: told.append(epoch) or set_epoch(epoch)
    brain = make_brain(tmp_path, epochs=2, clip_draws=draws)
    data = add_pipelines(toy_dataset(4, 0), brain.hparams.label_encoder)
    fit_quietly(brain, data, data, batch_size=4)
    brain.evaluate_split(data, "test", progressbar=False)
    assert told == [1, 2] and draws.epoch == 2


def test_no_manifest_rows_no_groups_and_no_counter(tmp_path):
    brain = make_brain(tmp_path, accuracy_by=["device"])
    del brain.hparams.epoch_counter
    data = add_pipelines(toy_dataset(2, 1), brain.hparams.label_encoder)
    loader = brain.make_dataloader(data, sb.Stage.TEST, batch_size=2)
    results = brain.evaluate_split(loader, "test", progressbar=False)
    assert "accuracy_by" not in results
    assert results["checkpoint_epoch"] is None


class KeyedTeachers:
    """Two teachers whose logits are a function of each clip's ID."""

    def teacher_logits(self, batch):
        rows = [
            torch.randn(2, 3, generator=torch.Generator().manual_seed(seed))
            for seed in (zlib.crc32(i.encode()) for i in batch.id)
        ]
        return 3 * torch.stack(rows, dim=1)  # [K, B, C]


def test_student_loss_is_the_kd_loss_with_the_labels(tmp_path):
    from speechbrain_kd.brain import DistillationBrain
    from speechbrain_kd.losses import DistillationLoss

    kd = DistillationLoss(temperature=2.0, hard_label_weight=0.5)
    brain = make_brain(
        tmp_path, DistillationBrain, kd_loss=kd, soft_labels=KeyedTeachers()
    )
    del brain.modules["center_loss"]
    batch = toy_batch(brain)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    expected = kd(
        out["logits"],
        KeyedTeachers().teacher_logits(batch),
        batch.label_encoded.data.view(-1),
    )
    assert torch.allclose(loss, expected)


def test_a_checkpoint_without_random_state_still_resumes(tmp_path):
    # Checkpoints written before the random state was saved have no file.
    brain = make_brain(tmp_path, epochs=1)
    data = add_pipelines(toy_dataset(4, 0), brain.hparams.label_encoder)
    fit_quietly(brain, data, data, batch_size=4)
    (state,) = (tmp_path / "save").glob("CKPT*/rng_state.ckpt")
    state.unlink()
    again = make_brain(tmp_path, epochs=2)
    with pytest.warns(UserWarning, match="missing a load path for rng_state"):
        fit_quietly(again, data, data, batch_size=4)
    assert again.hparams.epoch_counter.current == 2


def test_nonfinite_messages_name_every_clip_and_view(tmp_path):
    brain = make_brain(tmp_path)
    del brain.hparams.epoch_counter
    brain.step = 4
    sig = torch.zeros(3, 8, 2)
    sig[0, 0, 0] = float("nan")
    sig[2, 1, 1] = float("inf")
    teacher = torch.zeros(3, 8, 2)
    teacher[1, 0, 0] = float("nan")
    batch = sb.dataio.batch.PaddedBatch(
        [
            {"id": f"c{i}", "sig": sig[i], "teacher_sig": teacher[i]}
            for i in range(3)
        ]
    )

    def message(loss, batch, stage):
        with pytest.raises(FloatingPointError) as error:
            brain._stop_if_nonfinite(torch.tensor(loss), batch, stage)
        return str(error.value)

    assert message(float("nan"), batch, sb.Stage.TRAIN) == (
        "train loss is nan at epoch ?, step 4: these clips hold NaN or "
        "infinite samples: c0 (sig), c2 (sig), c1 (teacher_sig)"
    )
    finite = sb.dataio.batch.PaddedBatch(
        [{"id": "c0", "sig": torch.zeros(8, 2)}]
    )
    assert message(float("inf"), finite, sb.Stage.VALID) == (
        "valid loss is inf: the inputs are finite, so training diverged "
        "(lower lr, or check the model and precision); the batch: ['c0']"
    )


def record_validation(brain, epoch, targets, predictions):
    """One validation epoch whose predictions are given, then its end.

    The classifier's weights are all set to the epoch's number first, so
    that the checkpoint a test loads tells which epoch it was.
    """
    with torch.no_grad():
        for p in brain.modules.classifier.parameters():
            p.fill_(float(epoch))
    brain.hparams.epoch_counter.current = epoch
    brain.on_stage_start(sb.Stage.VALID, epoch)
    brain._records["ids"].extend(f"clip{k}" for k in range(len(targets)))
    brain._records["targets"].append(torch.tensor(targets))
    brain._records["log_probs"].append(
        torch.nn.functional.one_hot(torch.tensor(predictions), 3)
        .float()
        .log_softmax(-1)
    )
    brain.on_stage_end(sb.Stage.VALID, 1.0, epoch)


def test_evaluation_loads_the_best_checkpoint_not_the_latest(tmp_path):
    log = tmp_path / "train_log.txt"
    brain = make_brain(
        tmp_path,
        epochs=2,
        target_pairs=[["bus", "park"]],
        train_logger=FileTrainLogger(log),
    )
    brain.init_optimizers()
    targets = [0, 2, 2]  # one clip of the pair
    for epoch, predictions in ((1, [0, 2, 2]), (2, [1, 0, 2])):
        record_validation(brain, epoch, targets, predictions)
    kept = {
        c.meta["epoch"]: c.meta for c in brain.checkpointer.list_checkpoints()
    }
    assert sorted(kept) == [1, 2]  # the best and the latest
    assert kept[1]["pair_accuracy"] == 1.0 and kept[2]["pair_accuracy"] == 0.0
    # Without an annealing schedule the optimiser's rate is logged; no
    # training stage ran, so there are no train stats.
    first = log.read_text().splitlines()[0]
    assert first.startswith("epoch: 1, lr: 5.00e-02 - valid loss: ")
    test = add_pipelines(toy_dataset(3, seed=1), brain.hparams.label_encoder)
    results = brain.evaluate_split(test, "test", progressbar=False)
    assert results["checkpoint_epoch"] == 1
    for p in brain.modules.classifier.parameters():
        assert torch.all(p == 1.0)


def test_specialist_keeps_and_loads_its_best_pair_accuracy_epoch(tmp_path):
    # Pair accuracy and overall accuracy disagree: epoch 1 is the best
    # overall, epoch 2 the best on the pair, epoch 3 (the latest) neither.
    brain = make_brain(
        tmp_path, epochs=3, target_pairs=[PAIR], best_key="pair_accuracy"
    )
    brain.init_optimizers()
    targets = [0, 1, 2, 2, 2, 2]  # two clips of the pair, four others
    epochs = {
        1: [2, 2, 2, 2, 2, 2],  # accuracy 4/6, pair accuracy 0
        2: [0, 1, 0, 0, 0, 0],  # accuracy 2/6, pair accuracy 1
        3: [0, 2, 0, 0, 0, 0],  # accuracy 1/6, pair accuracy 1/2
    }
    for epoch, predictions in epochs.items():
        record_validation(brain, epoch, targets, predictions)
    kept = {
        c.meta["epoch"]: c.meta for c in brain.checkpointer.list_checkpoints()
    }
    assert sorted(kept) == [2, 3]  # the pair-accuracy best and the latest
    assert kept[2]["pair_accuracy"] == 1.0
    assert kept[2]["accuracy"] == pytest.approx(2 / 6)
    test = add_pipelines(toy_dataset(3, seed=1), brain.hparams.label_encoder)
    results = brain.evaluate_split(test, "test", progressbar=False)
    assert results["checkpoint_epoch"] == 2
    for p in brain.modules.classifier.parameters():
        assert torch.all(p == 2.0)


def test_loader_workers_are_shared_by_the_node_processes(tmp_path, monkeypatch):
    import speechbrain_kd.brain as brain_module

    calls = []
    options = brain_module.loader_options

    def recorded(loader_kwargs, device="cpu", processes=1):
        calls.append((str(device), processes))
        return options(loader_kwargs, device, processes)

    monkeypatch.setattr(brain_module, "loader_options", recorded)
    brain = make_brain(tmp_path)
    data = add_pipelines(toy_dataset(2, 0), brain.hparams.label_encoder)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    brain.make_dataloader(data, sb.Stage.VALID, batch_size=2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    brain.make_dataloader(data, sb.Stage.VALID, batch_size=2)
    assert calls == [("cpu", 1), ("cpu", 3)]


def test_optimisers_of_a_brain_without_center_loss(tmp_path):
    brain = make_brain(tmp_path)
    del brain.modules["center_loss"]
    brain.init_optimizers()
    assert not hasattr(brain, "center_optimizer")
    params = {id(p) for g in brain.optimizer.param_groups for p in g["params"]}
    assert params == {id(p) for p in brain.modules.parameters()}


def test_mixed_student_learns_the_mix_of_the_soft_labels(tmp_path):
    from speechbrain_kd.brain import DistillationBrain
    from speechbrain_kd.losses import DistillationLoss, mix_teacher_logits

    kd = DistillationLoss(temperature=2.0, hard_label_weight=0.5)
    brain = make_brain(
        tmp_path,
        DistillationBrain,
        kd_loss=kd,
        soft_labels=KeyedTeachers(),
        mixup_alpha=0.4,
        mixup_start_epoch=0,
    )
    batch = toy_batch(brain)
    wavs, _ = batch.sig
    targets = batch.label_encoded.data.view(-1)
    recorded = record_model_inputs(brain)
    torch.manual_seed(5)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    targets_b, lam = out["mix"]
    partners = out["partners"]
    assert 0 < lam < 1 and not torch.equal(partners, torch.arange(8))
    # The partners are the clips each clip was mixed with.
    expected_input = lam * wavs + (1 - lam) * wavs[partners]
    assert torch.allclose(recorded[0][0], expected_input)
    assert torch.equal(targets_b, targets[partners])
    del brain.modules["center_loss"]
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    teacher = KeyedTeachers().teacher_logits(batch)
    mixed = mix_teacher_logits(teacher, partners, lam, 2.0)
    expected = lam * kd(out["logits"], mixed, targets) + (1 - lam) * kd(
        out["logits"], mixed, targets_b
    )
    assert torch.allclose(loss, expected)
    # Not the unmixed soft labels, nor the partner's alone.
    for other in (teacher, teacher[:, partners]):
        assert not torch.allclose(loss, kd(out["logits"], other, targets))


def test_mixed_distillation_needs_a_loss_with_a_temperature(tmp_path):
    from speechbrain_kd.brain import DistillationBrain

    def plain_kd(student, teachers, targets):
        return student.sum()

    brain = make_brain(
        tmp_path,
        DistillationBrain,
        kd_loss=plain_kd,
        soft_labels=KeyedTeachers(),
        mixup_alpha=0.4,
    )
    batch = toy_batch(brain)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    with pytest.raises(ValueError) as error:
        brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    assert str(error.value).startswith(
        "mixup_alpha > 0 in distillation mixes the soft labels at the "
        "loss's temperature, and kd_loss <function"
    )
    assert str(error.value).endswith(
        "has none (use speechbrain_kd.losses.DistillationLoss)"
    )
