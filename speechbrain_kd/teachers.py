"""Frozen teacher ensembles built from trained phases.

In Jung et al., "Knowledge Distillation in Acoustic Scene Classification",
IEEE Access 2020, the teachers are the baseline and the specialists; their
ensemble (averaged posteriors) is also the reference the student must beat.
"""

import hashlib
import json
from pathlib import Path

import torch

from speechbrain_kd.checkpoints import MODEL_MODULES, load_trained_model


class TeacherEnsemble(torch.nn.Module):
    """Frozen teachers that return their logits stacked: ``[K, B, C]``.

    The teachers stay in evaluation mode (a Brain's ``modules.train()``
    cannot switch their BatchNorm to training statistics), hold no
    gradients and run under ``torch.no_grad``.

    Arguments
    ---------
    teachers : dict of str -> TrainedModel
        From :func:`speechbrain_kd.checkpoints.load_trained_model`.
    folders : dict of str -> str, optional
        Where each teacher came from (for messages and fingerprints).

    Example
    -------
    >>> from speechbrain_kd.checkpoints import TrainedModel
    >>> from speechbrain_kd.models import SceneClassifier
    >>> class Flat(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return wavs.flatten(1)
    >>> teacher = TrainedModel(
    ...     Flat(), SceneClassifier(4, 3), ["a", "b", "c"], 16000, {}, None)
    >>> ensemble = TeacherEnsemble({"t1": teacher, "t2": teacher})
    >>> ensemble(torch.randn(5, 2, 2)).shape
    torch.Size([2, 5, 3])
    """

    def __init__(self, teachers, folders=None):
        super().__init__()
        if not teachers:
            raise ValueError("a teacher ensemble needs at least one teacher")
        self.names = list(teachers)
        first = teachers[self.names[0]]
        self.labels = list(first.labels)
        self.sample_rate = first.sample_rate
        self.folders = dict(folders or {})
        self.checkpoints = {n: t.checkpoint for n, t in teachers.items()}
        for name, teacher in teachers.items():
            where = self.folders.get(name, name)
            if list(teacher.labels) != self.labels:
                raise ValueError(
                    f"teacher {where} has labels {teacher.labels}, but "
                    f"{self.folders.get(self.names[0], self.names[0])} has "
                    f"{self.labels}: teachers must share one label order"
                )
            if teacher.sample_rate != self.sample_rate:
                raise ValueError(
                    f"teacher {where} takes {teacher.sample_rate} Hz, but "
                    f"the others take {self.sample_rate} Hz"
                )
        self.embedding_models = torch.nn.ModuleList(
            t.embedding_model for t in teachers.values()
        )
        self.classifiers = torch.nn.ModuleList(
            t.classifier for t in teachers.values()
        )
        self.specs = {n: t.spec for n, t in teachers.items()}
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_phase_folders(cls, folders, labels=None, device="cpu"):
        """Load the best model of each phase folder as a frozen teacher.

        Arguments
        ---------
        folders : list of str or dict of str -> str
            Phase output folders (names default to the folder names).
        labels : list of str, optional
            The student's labels; every teacher must have exactly these,
            in this order.
        device : str

        Returns
        -------
        TeacherEnsemble
        """
        if isinstance(folders, (str, Path)):
            folders = [folders]
        if not isinstance(folders, dict):
            folders = {_teacher_name(f, i): f for i, f in enumerate(folders)}
        teachers = {
            name: load_trained_model(folder, device=device)
            for name, folder in folders.items()
        }
        ensemble = cls(teachers, {n: str(f) for n, f in folders.items()})
        if labels is not None and list(labels) != ensemble.labels:
            raise ValueError(
                f"the teachers ({list(folders.values())}) have labels "
                f"{ensemble.labels}, but the student has {list(labels)}: "
                "distil only between models with one label order"
            )
        return ensemble.to(device)

    def train(self, mode=True):
        """Teachers never leave evaluation mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, wavs, lengths=None):
        """Waveforms -> teacher logits ``[K, B, C]``."""
        return torch.stack(
            [
                classifier(embedding(wavs, lengths)).float()
                for embedding, classifier in zip(
                    self.embedding_models, self.classifiers
                )
            ]
        )

    def fingerprint(self):
        """SHA-256 of the teachers' weights files and model specs.

        Returns
        -------
        str
        """
        digest = hashlib.sha256()
        for name in self.names:
            digest.update(name.encode())
            digest.update(json.dumps(self.specs[name], sort_keys=True).encode())
            checkpoint = self.checkpoints[name]
            for module in MODEL_MODULES:
                digest.update(
                    (Path(checkpoint) / f"{module}.ckpt").read_bytes()
                )
        return digest.hexdigest()


def _teacher_name(folder, index):
    name = Path(folder).name or f"teacher{index}"
    return f"{index}:{name}"


class PosteriorAverage(torch.nn.Module):
    """Log of the weighted average of the teachers' posteriors.

    With a :class:`TeacherEnsemble` as ``embedding_model``, this is the
    ``classifier`` of the ensemble of Jung et al. (baseline + specialists,
    posteriors averaged), so the ensemble is evaluated by the same Brain as
    any model.

    Arguments
    ---------
    weights : sequence of float, optional
        One per teacher; normalised. Default: equal.

    Example
    -------
    >>> logits = torch.log(torch.tensor([[[0.9, 0.1]], [[0.3, 0.7]]]))
    >>> PosteriorAverage([3, 1])(logits).exp()
    tensor([[0.7500, 0.2500]])
    """

    def __init__(self, weights=None):
        super().__init__()
        self.weights = None if weights is None else list(map(float, weights))

    def forward(self, teacher_logits):
        """``[K, B, C]`` logits -> ``[B, C]`` log-probabilities."""
        k = teacher_logits.shape[0]
        weights = (
            torch.ones(k)
            if self.weights is None
            else torch.tensor(self.weights)
        )
        if weights.shape != (k,):
            raise ValueError(
                f"{len(weights)} ensemble weights given for {k} teachers"
            )
        weights = (weights / weights.sum()).to(teacher_logits.device)
        log_probs = torch.log_softmax(teacher_logits.float(), dim=-1)
        return torch.logsumexp(log_probs + weights.log()[:, None, None], dim=0)
