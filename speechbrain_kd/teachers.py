"""Frozen teacher ensembles built from trained phases.

In Jung et al., "Knowledge Distillation in Acoustic Scene Classification",
IEEE Access 2020, the teachers of the student are the baseline and the
specialists; the ensemble of the same models (posteriors averaged) is the
reference the student must beat. :class:`TeacherEnsemble` serves both: it
returns the stacked logits of its teachers (the soft labels of
:mod:`speechbrain_kd.soft_labels`), and paired with
:class:`PosteriorAverage` it is an ``embedding_model`` / ``classifier``
pair that the ordinary Brain evaluates like any single model.
"""

import hashlib
import json
from pathlib import Path

import torch

from speechbrain_kd.checkpoints import MODEL_MODULES, load_trained_model


class TeacherEnsemble(torch.nn.Module):
    """Frozen teachers that return their logits stacked: ``[K, B, C]``.

    The teachers stay in evaluation mode whatever ``train()`` asks (a
    Brain's ``modules.train()`` cannot switch their BatchNorm to batch
    statistics or update the running ones), hold no gradients and run
    under ``torch.no_grad``. Teachers of any model family mix, as long as
    they share one label order and one sample rate; each does its own
    feature extraction and channel adaptation.

    Use :meth:`from_phase_folders` to load trained phases; the constructor
    takes models already loaded.

    Arguments
    ---------
    teachers : dict of str -> speechbrain_kd.checkpoints.TrainedModel
        Teacher name -> model, in the order of the output's first axis.
    folders : dict of str -> str, optional
        Where each teacher came from (named in error messages).
    labels : list of str, optional
        The student's labels: every teacher must have exactly these, in
        this order.

    Attributes
    ----------
    names : list of str
    labels : list of str
    sample_rate : int
    folders : dict of str -> str
    checkpoints : dict of str -> pathlib.Path or None
        The checkpoint folder each teacher's weights came from.
    specs : dict of str -> dict
        Each teacher's ``model_spec.json``.

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
    >>> TeacherEnsemble({"t1": teacher}, labels=["a", "c", "b"])
    Traceback (most recent call last):
    ...
    ValueError: teacher 't1' (t1) has labels ['a', 'b', 'c'] but the ...
    """

    def __init__(self, teachers, folders=None, labels=None):
        super().__init__()
        if not teachers:
            raise ValueError("a teacher ensemble needs at least one teacher")
        self.names = [str(name) for name in teachers]
        self.folders = {
            name: str((folders or {}).get(name, name)) for name in self.names
        }
        models = list(teachers.values())
        _check_agreement(self.names, models, self.folders, labels)
        self.labels = list(models[0].labels)
        self.sample_rate = int(models[0].sample_rate)
        self.checkpoints = {
            name: None if model.checkpoint is None else Path(model.checkpoint)
            for name, model in zip(self.names, models, strict=True)
        }
        self.specs = {
            name: model.spec
            for name, model in zip(self.names, models, strict=True)
        }
        self.embedding_models = torch.nn.ModuleList(
            model.embedding_model for model in models
        )
        self.classifiers = torch.nn.ModuleList(
            model.classifier for model in models
        )
        # Digest the weights now: the fingerprint must describe the weights
        # held in memory, even if a checkpoint file is replaced later.
        self._weight_digests = {
            name: _weights_digest(model)
            for name, model in zip(self.names, models, strict=True)
        }
        self.requires_grad_(False)
        super().train(False)

    @classmethod
    def from_phase_folders(cls, folders, labels=None, device="cpu"):
        """Load the best model of each phase folder as a frozen teacher.

        Arguments
        ---------
        folders : str, list of str or dict of str -> str
            Phase output folders (see CONTRIBUTING.md). A list names the
            teachers ``"<index>:<folder name>"``; a dict gives the names.
        labels : list of str, optional
            The student's labels; every teacher must have exactly these,
            in this order.
        device : str or torch.device

        Returns
        -------
        TeacherEnsemble

        Example
        -------
        >>> from speechbrain.utils.checkpoints import Checkpointer
        >>> from speechbrain_kd.models import LogMelCNN, SceneClassifier
        >>> from speechbrain_kd.models.spec import write_model_spec
        >>> phase = getfixture("tmpdir") + "/baseline"
        >>> emb = LogMelCNN(8000, n_mels=8, n_fft=256, conv_channels=[4],
        ...                 embedding_dim=4)
        >>> clf = SceneClassifier(4, 2)
        >>> write_model_spec(
        ...     phase + "/save/model_spec.json", emb, clf, 8000, ["x", "y"])
        >>> _ = Checkpointer(
        ...     phase + "/save", {"embedding_model": emb, "classifier": clf}
        ... ).save_checkpoint(meta={"accuracy": 0.5})
        >>> ensemble = TeacherEnsemble.from_phase_folders([phase, phase])
        >>> ensemble.names, ensemble.sample_rate
        (['0:baseline', '1:baseline'], 8000)
        >>> ensemble(torch.randn(3, 800, 2)).shape
        torch.Size([2, 3, 2])
        """
        if isinstance(folders, (str, Path)):
            folders = [folders]
        if not isinstance(folders, dict):
            folders = {
                _teacher_name(folder, index): folder
                for index, folder in enumerate(folders)
            }
        teachers = {
            name: load_trained_model(folder, device=device)
            for name, folder in folders.items()
        }
        folders = {name: str(folder) for name, folder in folders.items()}
        return cls(teachers, folders, labels=labels).to(device)

    def train(self, mode=True):
        """Stay in evaluation mode whatever ``mode`` asks; return self.

        Example
        -------
        >>> from speechbrain_kd.checkpoints import TrainedModel
        >>> teacher = TrainedModel(torch.nn.BatchNorm1d(2),
        ...     torch.nn.Identity(), ["a", "b"], 16000, {}, None)
        >>> ensemble = TeacherEnsemble({"t": teacher})
        >>> torch.nn.ModuleDict({"e": ensemble}).train().training
        True
        >>> any(module.training for module in ensemble.modules())
        False
        """
        return super().train(False)

    @torch.no_grad()
    def forward(self, wavs, lengths=None):
        """Waveforms -> stacked teacher logits.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` or ``[B, T, C]`` at :attr:`sample_rate`.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            float32 ``[K, B, n_classes]``, without gradient.

        Example
        -------
        >>> from speechbrain_kd.checkpoints import TrainedModel
        >>> class Mean(torch.nn.Module):
        ...     def forward(self, wavs, lengths=None):
        ...         return wavs.mean(1)
        >>> teacher = TrainedModel(Mean(), torch.nn.Linear(2, 4),
        ...                        list("abcd"), 16000, {}, None)
        >>> wavs = torch.ones(3, 80, 2, requires_grad=True)
        >>> out = TeacherEnsemble({"t": teacher})(wavs)
        >>> out.shape, out.requires_grad
        (torch.Size([1, 3, 4]), False)
        """
        return torch.stack(
            [
                classifier(embedding(wavs, lengths)).float()
                for embedding, classifier in zip(
                    self.embedding_models, self.classifiers, strict=True
                )
            ]
        )

    def fingerprint(self):
        """SHA-256 of the teachers' names, model specs and weights.

        The weights are digested when the ensemble is built: the content
        of each teacher's ``embedding_model.ckpt`` and ``classifier.ckpt``
        (or, for a teacher given in memory without a checkpoint, its
        parameters and buffers). Another checkpoint, retrained weights or
        another teacher order give another fingerprint.

        Returns
        -------
        str
            64 hexadecimal digits.

        Example
        -------
        >>> from speechbrain_kd.checkpoints import TrainedModel
        >>> def teacher(seed):
        ...     torch.manual_seed(seed)
        ...     return TrainedModel(torch.nn.Identity(),
        ...         torch.nn.Linear(2, 2), ["a", "b"], 16000, {}, None)
        >>> one = TeacherEnsemble({"t": teacher(0)}).fingerprint()
        >>> one == TeacherEnsemble({"t": teacher(0)}).fingerprint()
        True
        >>> one == TeacherEnsemble({"t": teacher(1)}).fingerprint()
        False
        """
        digest = hashlib.sha256()
        for name in self.names:
            digest.update(json.dumps(name).encode())
            digest.update(json.dumps(self.specs[name], sort_keys=True).encode())
            digest.update(self._weight_digests[name].encode())
        return digest.hexdigest()


def _check_agreement(names, models, folders, student_labels):
    """Refuse teachers whose labels or rates differ (naming the folders)."""
    if student_labels is not None:
        student_labels = [str(label) for label in student_labels]
        for name, model in zip(names, models, strict=True):
            if list(model.labels) != student_labels:
                raise ValueError(
                    f"teacher {name!r} ({folders[name]}) has labels "
                    f"{list(model.labels)} but the student has "
                    f"{student_labels}: teachers and student must share "
                    "one label set in one order"
                )
    first = names[0]
    for name, model in zip(names, models, strict=True):
        if list(model.labels) != list(models[0].labels):
            raise ValueError(
                f"teacher {name!r} ({folders[name]}) has labels "
                f"{list(model.labels)} but teacher {first!r} "
                f"({folders[first]}) has {list(models[0].labels)}: teachers "
                "must share one label set in one order"
            )
        if int(model.sample_rate) != int(models[0].sample_rate):
            raise ValueError(
                f"teacher {name!r} ({folders[name]}) takes "
                f"{model.sample_rate} Hz but teacher {first!r} "
                f"({folders[first]}) takes {models[0].sample_rate} Hz: "
                "teachers must share one sample rate"
            )


def _weights_digest(model):
    digest = hashlib.sha256()
    if model.checkpoint is not None:
        for module in MODEL_MODULES:
            path = Path(model.checkpoint) / f"{module}.ckpt"
            digest.update(module.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()
    for module in MODEL_MODULES:
        state = getattr(model, module).state_dict()
        for key in sorted(state):
            tensor = state[key].detach().cpu().contiguous()
            digest.update(
                f"{module}.{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode()
            )
            digest.update(
                tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
            )
    return digest.hexdigest()


def _teacher_name(folder, index):
    # The index keeps names unique and records the order.
    return f"{index}:{Path(folder).name or 'teacher'}"


class PosteriorAverage(torch.nn.Module):
    """Log of the weighted average of the teachers' posteriors.

    ``log(sum_k w_k softmax(z_k))`` with weights normalised to sum to one.
    With a :class:`TeacherEnsemble` as ``embedding_model``, this is the
    ``classifier`` of the ensemble of Jung et al., IEEE Access 2020
    (baseline + specialists, posteriors averaged), so the ensemble is
    evaluated by the same Brain as any model: its output is log-probabilities
    ``[B, C]``, which softmax and cross-entropy read like logits.

    Arguments
    ---------
    weights : sequence of float, optional
        One non-negative weight per teacher, in the ensemble's order;
        normalised. Default: equal weights.

    Example
    -------
    >>> logits = torch.log(torch.tensor([[[0.9, 0.1]], [[0.3, 0.7]]]))
    >>> PosteriorAverage([3, 1])(logits).exp()
    tensor([[0.7500, 0.2500]])
    >>> PosteriorAverage([1, 1, 1])(logits)
    Traceback (most recent call last):
    ...
    ValueError: PosteriorAverage has 3 weights but got the logits of 2 ...
    """

    def __init__(self, weights=None):
        super().__init__()
        if weights is not None:
            weights = [float(w) for w in weights]
            if not weights:
                raise ValueError("PosteriorAverage weights must not be empty")
            if any(not w >= 0 or w == float("inf") for w in weights):
                raise ValueError(
                    f"PosteriorAverage weights must be finite and "
                    f"non-negative, got {weights}"
                )
            if sum(weights) == 0:
                raise ValueError(
                    f"PosteriorAverage weights sum to zero: {weights}"
                )
        self.weights = weights

    def forward(self, teacher_logits):
        """Teacher logits ``[K, B, C]`` -> log-probabilities ``[B, C]``.

        Example
        -------
        >>> out = PosteriorAverage()(torch.randn(3, 4, 5))
        >>> out.shape, bool(torch.allclose(out.exp().sum(-1), torch.ones(4)))
        (torch.Size([4, 5]), True)
        """
        if teacher_logits.dim() != 3:
            raise ValueError(
                "PosteriorAverage expects teacher logits [K, B, C], got "
                f"shape {tuple(teacher_logits.shape)}"
            )
        k = teacher_logits.shape[0]
        if self.weights is None:
            weights = torch.full((k,), 1.0 / k)
        elif len(self.weights) != k:
            raise ValueError(
                f"PosteriorAverage has {len(self.weights)} weights but got "
                f"the logits of {k} teachers: give one weight per teacher "
                "(teacher_weights)"
            )
        else:
            weights = torch.tensor(self.weights)
            weights = weights / weights.sum()
        log_weights = weights.log().to(teacher_logits.device)
        log_probs = torch.log_softmax(teacher_logits.float(), dim=-1)
        return torch.logsumexp(log_probs + log_weights[:, None, None], dim=0)
