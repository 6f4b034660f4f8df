"""The Brain classes every phase of a recipe trains and evaluates with.

``SceneClassificationBrain`` trains the baseline and the specialists of
Jung et al., "Knowledge Distillation in Acoustic Scene Classification",
IEEE Access 2020: cross-entropy plus center loss (Wen et al., ECCV 2016),
mixup (Zhang et al., ICLR 2018) from a configurable epoch, and an evaluation
that writes accuracy, class-wise accuracy, the confusion matrix and the
errors inside target pairs. ``DistillationBrain`` is the same Brain with the
soft labels of frozen teachers in the training loss; nothing else differs.

Hyperparameters read (all optional unless stated):

- ``modules``: ``embedding_model`` and ``classifier`` (required), and
  ``center_loss`` (a :class:`speechbrain_kd.losses.CenterLoss`).
- ``opt_class`` (required to train) and ``center_opt_class``: the centers
  get their own optimiser (SGD, lr 0.5 in the paper).
- ``mixup_alpha`` and ``mixup_start_epoch``: mixup is off when alpha is 0.
- ``gain_jitter_db``: each training clip's gain is drawn uniformly in
  that many dB either way (0 or absent: off).
- ``lr_annealing``: a SpeechBrain scheduler called once per epoch.
- ``epoch_counter``, ``train_logger``, ``checkpointer``, ``output_folder``.
  An ``EpochCounterWithStopper`` (see
  :func:`speechbrain_kd.epochs.epoch_counter`) is fed the
  ``best_key`` validation metric each epoch: training stops early and the
  evaluation loads the best checkpoint.
- ``target_pairs``: pairs of scene names whose mutual errors are reported.
- ``best_key``: the validation metric that picks checkpoints,
  ``accuracy`` (default) or ``pair_accuracy``.
- ``baseline_results``: a ``test_results.json`` of another model, whose
  errors inside the target pairs are reported beside this model's.
- ``accuracy_by``: manifest columns (``[device, city]``) whose groups get
  their own accuracy in the results of :meth:`evaluate_split`.
- ``kd_loss`` and ``soft_labels``: the distillation loss and the provider
  of teacher logits (``DistillationBrain`` only).

One module (about 670 lines) because its two Brains share every hook:
training step, mixup, center loss, the early-stopping feed, the learning
curve and the evaluation that writes results; split, each half would import
the other's internals.
"""

import json
import logging
import os
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils import epoch_loop
from speechbrain.utils.repro import SaveableGenerator

from speechbrain_kd.dataio import loader_options
from speechbrain_kd.epochs import LEARNING_CURVE, write_learning_curve
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.labels import encoder_labels
from speechbrain_kd.losses import mix_teacher_logits, mixup
from speechbrain_kd.metrics import (
    classification_report,
    grouped_accuracy,
    write_predictions,
)
from speechbrain_kd.pairs import pair_errors
from speechbrain_kd.plots import plot_confusion_matrix

logger = logging.getLogger(__name__)

RNG_STATE = "rng_state"  # the checkpoint's name of the random state


class SceneClassificationBrain(sb.Brain):
    """Clip-level audio classification: the baseline and specialist phases.

    Batches carry ``id``, ``sig`` (waveforms and relative lengths) and
    ``label_encoded`` (class indices ``[B, 1]``). Call
    :meth:`evaluate_split` to evaluate and write results named after the
    split (``test_results.json``, ``valid_results.json``).

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> from speechbrain_kd.models import SceneClassifier
    >>> class MeanEmbedding(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return torch.stack([wavs.mean((1, 2)), wavs.std((1, 2))], 1)
    >>> brain = SceneClassificationBrain(
    ...     modules={
    ...         "embedding_model": MeanEmbedding(),
    ...         "classifier": SceneClassifier(2, 3),
    ...     },
    ...     opt_class=lambda params: torch.optim.SGD(params, lr=0.1),
    ...     hparams={"mixup_alpha": 0.0},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> batch = PaddedBatch(
    ...     [
    ...         {"id": "a", "sig": torch.randn(80, 2), "label_encoded": 1},
    ...         {"id": "b", "sig": torch.randn(80, 2), "label_encoded": 2},
    ...     ]
    ... )
    >>> outputs = brain.compute_forward(batch, sb.Stage.TRAIN)
    >>> outputs["logits"].shape
    torch.Size([2, 3])
    """

    # Results of the last evaluation, written as <split>_results.json.
    split_name = "test"

    def compute_forward(self, batch, stage):
        """Embed the waveforms and classify them (mixup while training)."""
        batch = batch.to(self.device, non_blocking=True)  # pinned: async
        wavs, lengths = batch.sig
        targets = batch.label_encoded.data.view(-1)
        mix = partners = None
        if stage == sb.Stage.TRAIN:
            wavs = self._random_gain(wavs)
        if stage == sb.Stage.TRAIN and self._mixup_active():
            # Mixing the batch's indices gives the partner of every clip.
            order = torch.arange(len(targets), device=targets.device)
            wavs, partners, lam = mixup(
                wavs, order, alpha=self.hparams.mixup_alpha
            )
            mix = (targets[partners], lam)
        embeddings = self.modules.embedding_model(wavs, lengths)
        logits = self.modules.classifier(embeddings)
        return {
            "logits": logits,
            "embeddings": embeddings,
            "mix": mix,
            "partners": partners,
        }

    def _random_gain(self, wavs):
        """Scale each clip by a gain uniform in +-``gain_jitter_db`` dB."""
        jitter = getattr(self.hparams, "gain_jitter_db", 0.0) or 0.0
        if not jitter:
            return wavs
        # Drawn on the CPU: the same gains on every device, and resumable.
        gains_db = torch.empty(wavs.shape[0]).uniform_(-jitter, jitter)
        gains = (10.0 ** (gains_db / 20.0)).to(wavs.device, wavs.dtype)
        return wavs * gains.view(-1, *([1] * (wavs.dim() - 1)))

    def compute_objectives(self, predictions, batch, stage):
        """Return the training loss, or the cross-entropy when evaluating."""
        targets = batch.label_encoded.data.view(-1).to(self.device)
        logits = predictions["logits"]
        if stage == sb.Stage.TRAIN:
            loss = self.training_loss(predictions, batch, targets)
        else:
            loss = F.cross_entropy(logits, targets)
            self._stop_if_nonfinite(loss, batch, stage)
            self._records["ids"].extend(batch.id)
            self._records["targets"].append(targets.cpu())
            self._records["log_probs"].append(
                torch.log_softmax(logits.detach().float(), -1).cpu()
            )
        center_loss = getattr(self.modules, "center_loss", None)
        if center_loss is not None and stage == sb.Stage.TRAIN:
            embeddings, mix = predictions["embeddings"], predictions["mix"]
            if mix is None:
                loss = loss + center_loss(embeddings, targets)
            else:
                targets_b, lam = mix
                loss = loss + lam * center_loss(embeddings, targets)
                loss = loss + (1 - lam) * center_loss(embeddings, targets_b)
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Keep the batch, so that a non-finite loss can name its clips."""
        self._batch = batch

    def check_loss_isfinite(self, loss):
        """Stop at the first non-finite training loss, naming the clips.

        SpeechBrain skips such batches silently up to
        ``nonfinite_patience``; a NaN from the data or from diverging
        training is a result that must not be averaged away. The check
        costs nothing extra: SpeechBrain reads the loss here anyway.
        """
        self._stop_if_nonfinite(loss, self._batch, sb.Stage.TRAIN)

    def _stop_if_nonfinite(self, loss, batch, stage):
        if torch.isfinite(loss):
            return
        where = f"{stage.name.lower()} loss is {loss.item()}"
        if stage == sb.Stage.TRAIN:
            epoch = getattr(
                getattr(self.hparams, "epoch_counter", None), "current", "?"
            )
            where += f" at epoch {epoch}, step {self.step}"
        bad = {}
        for key in ("sig", "teacher_sig"):
            if getattr(batch, key, None) is not None:
                wavs = getattr(batch, key).data
                finite = torch.isfinite(wavs.flatten(1)).all(1).tolist()
                bad.update((i, key) for i, ok in enumerate(finite) if not ok)
        if bad:
            clips = ", ".join(
                f"{batch.id[i]} ({key})" for i, key in bad.items()
            )
            cause = f"these clips hold NaN or infinite samples: {clips}"
        else:
            cause = (
                "the inputs are finite, so training diverged (lower lr, or "
                f"check the model and precision); the batch: {list(batch.id)}"
            )
        raise FloatingPointError(f"{where}: {cause}")

    def training_loss(self, predictions, batch, targets):
        """Cross-entropy with one-hot labels (mixed when mixup is active).

        ``DistillationBrain`` replaces this with the distillation loss.
        """
        logits, mix = predictions["logits"], predictions["mix"]
        if mix is None:
            return F.cross_entropy(logits, targets)
        targets_b, lam = mix
        return lam * F.cross_entropy(logits, targets) + (
            1 - lam
        ) * F.cross_entropy(logits, targets_b)

    def _mixup_active(self):
        alpha = getattr(self.hparams, "mixup_alpha", 0.0) or 0.0
        start = getattr(self.hparams, "mixup_start_epoch", 0)
        epoch = getattr(self.hparams, "epoch_counter", None)
        current = epoch.current if epoch is not None else 0
        return alpha > 0 and current >= start

    def init_optimizers(self):
        """Give the center-loss centers their own optimiser.

        The network follows ``opt_class``; the centers follow
        ``center_opt_class`` (the paper's center learning rate), so that the
        small center-loss weight does not freeze them.
        """
        center_loss = getattr(self.modules, "center_loss", None)
        center_opt_class = getattr(self.hparams, "center_opt_class", None)
        if center_loss is None or center_opt_class is None:
            return super().init_optimizers()
        center_ids = {id(p) for p in center_loss.parameters()}
        network = [
            p
            for p in self.modules.parameters()
            if p.requires_grad and id(p) not in center_ids
        ]
        self.optimizer = self.opt_class(network)
        self.center_optimizer = center_opt_class(center_loss.parameters())
        self.optimizers_dict = {
            "opt_class": self.optimizer,
            "center_opt_class": self.center_optimizer,
        }
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)
            self.checkpointer.add_recoverable(
                "center_optimizer", self.center_optimizer
            )

    def _wrap_distributed(self):
        """DDP on the CPU without SyncBatchNorm.

        SpeechBrain 1.1.2 turns every BatchNorm into ``SyncBatchNorm`` under
        DDP, which only runs on CUDA; with ``torchrun ... --device=cpu
        --distributed_backend=gloo`` each process keeps its own batch
        statistics instead (the GPU path is SpeechBrain's own).
        """
        if not (self.distributed_launch and self.device == "cpu"):
            return super()._wrap_distributed()
        from torch.nn.parallel import DistributedDataParallel

        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module,
                    device_ids=None,
                    find_unused_parameters=self.find_unused_parameters,
                )

    def on_fit_start(self):
        """Save the random state with every checkpoint, then recover.

        torch's generators (crops, mixup, partner clips, dropout; CUDA's
        too) and the training loader's own generator are a recoverable
        (SpeechBrain's ``SaveableGenerator``), so that a run killed at any
        step and rerun draws exactly what the uninterrupted run draws.
        Loading is optional: a checkpoint from before this resumes too.
        """
        if self.checkpointer is not None and (
            RNG_STATE not in self.checkpointer.recoverables
        ):
            state = SaveableGenerator()
            state.generators["train_loader"] = self._train_loader_generator()
            self.checkpointer.add_recoverable(
                RNG_STATE, state, optional_load=True
            )
        counter = getattr(self.hparams, "epoch_counter", None)
        if type(counter) is epoch_loop.EpochCounterWithStopper:
            raise ValueError(
                "epoch_counter: speechbrain.utils.epoch_loop."
                "EpochCounterWithStopper (1.1.2) checkpoints the epoch only, "
                "not its best epoch and score, so a resumed run would stop "
                "at the wrong epoch; use speechbrain_kd.brain."
                "EpochCounterWithStopper or speechbrain_kd.epochs.epoch_counter"
            )
        super().on_fit_start()

    def _train_loader_generator(self):
        """The training loader's generator, seeded from SpeechBrain's seed.

        Its own generator, because a DataLoader draws a seed for its
        workers from the global one each time it is iterated (with no
        worker too): resumed in mid-epoch, that draw would come twice.
        """
        if getattr(self, "_loader_generator", None) is None:
            self._loader_generator = torch.Generator().manual_seed(
                torch.initial_seed()
            )
        return self._loader_generator

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """SpeechBrain's loader with options that keep the device fed.

        ``num_workers: auto`` and ``pin_memory`` are filled in for the
        Brain's device and the processes on its node
        (:func:`speechbrain_kd.dataio.loader_options`); the training loader
        gets its own generator (:meth:`on_fit_start`).
        """
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        loader_kwargs = loader_options(loader_kwargs, self.device, processes)
        if stage == sb.Stage.TRAIN:
            loader_kwargs.setdefault(
                "generator", self._train_loader_generator()
            )
        return super().make_dataloader(
            dataset, stage, ckpt_prefix, **loader_kwargs
        )

    def _train_loader_specifics(self, dataset, loader_kwargs):
        """Let a batch sampler that shards itself keep doing so.

        SpeechBrain wraps any ``batch_sampler`` in a
        ``DistributedSamplerWrapper`` under DDP (sharding it a second time)
        and, without DDP, never calls its ``set_epoch``. A sampler with
        ``shards_itself`` (the specialists' pair-focused sampler) is used
        as it is and told the epoch by ``fit``.
        """
        sampler = loader_kwargs.get("batch_sampler")
        if getattr(sampler, "shards_itself", False):
            self.train_sampler = sampler
            return loader_kwargs
        return super()._train_loader_specifics(dataset, loader_kwargs)

    def on_stage_start(self, stage, epoch=None):
        """Start collecting predictions; tell the clips' draws the epoch.

        ``hparams.clip_draws`` (a :class:`~speechbrain_kd.dataio.ClipDraws`,
        when the recipe has one) learns the epoch before the training
        loader starts its workers, which take a copy of it.
        """
        draws = getattr(self.hparams, "clip_draws", None)
        if stage == sb.Stage.TRAIN and draws is not None:
            draws.set_epoch(epoch)
        self._records = {"ids": [], "targets": [], "log_probs": []}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, anneal the learning rate, checkpoint, write results.

        After each validation the main process writes the epoch's line of
        ``<output_folder>/learning_curve.csv`` (:func:`write_learning_curve`),
        and an early stopper is fed the ``best_key`` metric
        (:meth:`_feed_stopper`) before the checkpoint saves its state.
        """
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        report = self._report()
        stats = {"loss": stage_loss, "accuracy": report["accuracy"]}
        if "pair_accuracy" in report:
            stats["pair_accuracy"] = report["pair_accuracy"]
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self._write_curve_row(epoch, stats, lr)
            self._feed_stopper(stats)
            annealing = getattr(self.hparams, "lr_annealing", None)
            if annealing is not None:
                _, lr = annealing(epoch)
                sb.nnet.schedulers.update_learning_rate(self.optimizer, lr)
            if getattr(self.hparams, "train_logger", None) is not None:
                self.hparams.train_logger.log_stats(
                    stats_meta={"epoch": epoch, "lr": lr},
                    train_stats=getattr(self, "train_stats", None),
                    valid_stats=stats,
                )
            if self.checkpointer is not None:
                meta = {k: v for k, v in stats.items() if k != "loss"}
                self.checkpointer.save_and_keep_only(
                    meta={**meta, "epoch": epoch},
                    max_keys=[self.best_key],
                )
        else:
            if getattr(self.hparams, "train_logger", None) is not None:
                self.hparams.train_logger.log_stats(
                    stats_meta={
                        "epoch loaded": self._epoch_loaded(),
                        "split": self.split_name,
                    },
                    test_stats=stats,
                )
            if sb.utils.distributed.if_main_process():
                self._write_results(report)

    def _write_curve_row(self, epoch, stats, lr):
        """The epoch's line of the learning curve (main process only).

        ``lr`` is the rate the epoch trained with (before annealing).
        """
        folder = getattr(self.hparams, "output_folder", None)
        if folder is None or not sb.utils.distributed.if_main_process():
            return
        train = getattr(self, "train_stats", None) or {}
        row = {
            "epoch": epoch,
            "train_loss": train.get("loss"),
            "valid_loss": stats["loss"],
        }
        row.update((k, v) for k, v in stats.items() if k != "loss")
        row["lr"] = lr
        write_learning_curve(Path(folder) / LEARNING_CURVE, row)

    def _feed_stopper(self, stats):
        """Give an ``EpochCounterWithStopper`` the ``best_key`` metric.

        A plain ``EpochCounter`` gets nothing. The metrics are accuracies
        (higher is better), so a stopper set to minimise is refused.
        """
        counter = getattr(self.hparams, "epoch_counter", None)
        if not isinstance(counter, epoch_loop.EpochCounterWithStopper):
            return
        if counter.direction != "max":
            raise ValueError(
                f"epoch_counter: direction is {counter.direction!r}, but "
                f"it stops on best_key {self.best_key!r}, an accuracy: "
                "set direction: max"
            )
        if self.best_key not in stats:
            raise ValueError(
                f"best_key {self.best_key!r} is not a validation metric of "
                f"this phase (it has {sorted(stats)}); pair_accuracy needs "
                "target_pairs"
            )
        counter.update_metric(stats[self.best_key])

    def evaluate_split(self, dataset, split_name, **kwargs):
        """Evaluate the best checkpoint on ``dataset`` and write results.

        Arguments
        ---------
        dataset : DynamicItemDataset or DataLoader
        split_name : str
            Names the outputs: ``<split>_results.json``,
            ``<split>_predictions.csv`` and ``<split>_confusion_matrix.png``
            (``confusion_matrix.png`` for the test split).
        **kwargs
            Passed to :meth:`speechbrain.core.Brain.evaluate`.

        Returns
        -------
        dict or None
            The results that were written (None on other processes than
            the main one).
        """
        self.split_name = split_name
        self.last_results = None  # written on the main process only
        self._clip_groups = self._groups_of(dataset)
        kwargs.setdefault("max_key", self.best_key)
        try:
            self.evaluate(dataset, **kwargs)
        finally:
            self._clip_groups = {}
        return self.last_results

    def _groups_of(self, dataset):
        """``{column: {clip ID: value}}`` for ``hparams.accuracy_by``.

        Columns of the manifest (``device``, ``city``) that every clip has;
        a dataset without manifest rows (a bare DataLoader) has none.
        """
        columns = getattr(self.hparams, "accuracy_by", None) or []
        rows = getattr(dataset, "data", None) or {}
        return {
            column: {clip: row[column] for clip, row in rows.items()}
            for column in columns
            if rows and all(column in row for row in rows.values())
        }

    def _report(self):
        labels = encoder_labels(self.hparams.label_encoder)
        log_probs = torch.cat(self._records["log_probs"])
        targets = torch.cat(self._records["targets"])
        predictions = log_probs.argmax(-1)
        report = classification_report(
            targets.tolist(), predictions.tolist(), labels
        )
        pairs = self._target_pairs()
        for pair_name, pair in pairs.items():
            report.setdefault("pair_errors", {})[pair_name] = pair_errors(
                report["confusion_matrix"], labels, pair
            )
        if pairs:
            in_pairs = {labels.index(s) for p in pairs.values() for s in p}
            hits = [
                int(t == p)
                for t, p in zip(
                    targets.tolist(), predictions.tolist(), strict=True
                )
                if t in in_pairs
            ]
            report["pair_accuracy"] = sum(hits) / max(len(hits), 1)
        groups = getattr(self, "_clip_groups", None) or {}
        for column, of_clip in groups.items():
            report.setdefault("accuracy_by", {})[column] = grouped_accuracy(
                targets.tolist(),
                predictions.tolist(),
                [of_clip[clip] for clip in self._records["ids"]],
            )
        self._log_probs, self._targets = log_probs, targets
        return report

    @property
    def best_key(self):
        """The validation metric that picks the best checkpoint.

        ``accuracy`` by default; a specialist uses ``pair_accuracy``, the
        accuracy on the clips of its target pairs, since cutting the errors
        inside the pair is its purpose.
        """
        return getattr(self.hparams, "best_key", "accuracy")

    def _epoch_loaded(self):
        counter = getattr(self.hparams, "epoch_counter", None)
        return counter.current if counter is not None else None

    def _target_pairs(self):
        pairs = getattr(self.hparams, "target_pairs", None) or []
        return {"/".join(pair): list(pair) for pair in pairs if pair}

    def _write_results(self, report):
        out = Path(self.hparams.output_folder)
        split = self.split_name
        baseline = getattr(self.hparams, "baseline_results", None)
        if baseline and report.get("pair_errors"):
            with open(baseline) as f:
                reference = json.load(f)
            report["baseline_pair_errors"] = {
                name: pair_errors(
                    reference["confusion_matrix"], reference["labels"], pair
                )
                for name, pair in self._target_pairs().items()
            }
        report["split"] = split
        report["checkpoint_epoch"] = self._epoch_loaded()
        write_json_atomic(out / f"{split}_results.json", report)
        self._write_predictions(out / f"{split}_predictions.csv", report)
        plot_name = (
            "confusion_matrix.png"
            if split == "test"
            else f"{split}_confusion_matrix.png"
        )
        plot_confusion_matrix(
            report["confusion_matrix"],
            report["labels"],
            out / plot_name,
            title=f"{Path(out).name}: {split} accuracy "
            f"{100 * report['accuracy']:.1f} %",
            highlight_pairs=list(self._target_pairs().values()),
        )
        self.last_results = report
        logger.info(
            "%s accuracy %.2f %% written to %s",
            split,
            100 * report["accuracy"],
            out / f"{split}_results.json",
        )

    def _write_predictions(self, path, report):
        """Per-clip targets, predictions and posteriors, keyed by clip ID."""
        write_predictions(
            path,
            self._records["ids"],
            self._targets.tolist(),
            self._log_probs.exp().tolist(),
            report["labels"],
        )


class DistillationBrain(SceneClassificationBrain):
    """The student of the distillation phase.

    The training loss is ``hparams.kd_loss(student_logits, teacher_logits,
    targets)`` (see :func:`speechbrain_kd.losses.distillation_loss`), with
    teacher logits ``[K, B, C]`` from ``hparams.soft_labels``: online
    teachers or a cache keyed by clip ID, behind the same
    ``teacher_logits(batch)`` call. The center loss, evaluation and
    checkpointing are the parent's.

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> from speechbrain_kd.losses import DistillationLoss
    >>> from speechbrain_kd.models import SceneClassifier
    >>> class FixedTeachers:
    ...     def teacher_logits(self, batch):
    ...         return torch.tensor([[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]])
    >>> class MeanEmbedding(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return torch.stack([wavs.mean((1, 2)), wavs.std((1, 2))], 1)
    >>> brain = DistillationBrain(
    ...     modules={
    ...         "embedding_model": MeanEmbedding(),
    ...         "classifier": SceneClassifier(2, 3),
    ...     },
    ...     hparams={
    ...         "kd_loss": DistillationLoss(temperature=2.0),
    ...         "soft_labels": FixedTeachers(),
    ...     },
    ...     run_opts={"device": "cpu"},
    ... )
    >>> batch = PaddedBatch(
    ...     [
    ...         {"id": "a", "sig": torch.randn(80, 2), "label_encoded": 0},
    ...         {"id": "b", "sig": torch.randn(80, 2), "label_encoded": 1},
    ...     ]
    ... )
    >>> outputs = brain.compute_forward(batch, sb.Stage.TRAIN)
    >>> loss = brain.compute_objectives(outputs, batch, sb.Stage.TRAIN)
    >>> bool(loss > 0)
    True
    """

    def training_loss(self, predictions, batch, targets):
        """The distillation loss against the teachers' logits.

        With mixup (``mixup_alpha`` > 0, off in the paper's recipe) the
        student sees ``lam * clip + (1 - lam) * partner`` and learns the same
        mix of the two clips' soft labels
        (:func:`~speechbrain_kd.losses.mix_teacher_logits`), with the
        hard-label term, if any, mixed as in the parent.
        """
        logits, mix = predictions["logits"], predictions["mix"]
        teacher_logits = self.hparams.soft_labels.teacher_logits(batch)
        teacher_logits = teacher_logits.to(logits.device)
        kd_loss = self.hparams.kd_loss
        if mix is None:
            return kd_loss(logits, teacher_logits, targets)
        temperature = getattr(kd_loss, "config", {}).get("temperature")
        if temperature is None:
            raise ValueError(
                "mixup_alpha > 0 in distillation mixes the soft labels at "
                f"the loss's temperature, and kd_loss {kd_loss!r} has none "
                "(use speechbrain_kd.losses.DistillationLoss)"
            )
        targets_b, lam = mix
        mixed = mix_teacher_logits(
            teacher_logits, predictions["partners"], lam, temperature
        )
        # The soft term is the same in both; only the hard term is mixed.
        return lam * kd_loss(logits, mixed, targets) + (1 - lam) * kd_loss(
            logits, mixed, targets_b
        )
