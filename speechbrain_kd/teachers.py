"""Frozen teacher ensembles and the average of their posteriors.

In Jung et al., "Knowledge Distillation in Acoustic Scene Classification",
IEEE Access 2020, the teachers of the student are the baseline and the
specialists; the ensemble of the same models (posteriors averaged) is the
reference the student must beat. :class:`TeacherEnsemble` serves both: it
returns the stacked logits of its teachers (the soft labels of
:mod:`speechbrain_kd.soft_labels`), and paired with
:class:`PosteriorAverage` it is an ``embedding_model`` / ``classifier``
pair that the ordinary Brain evaluates like any single model.

Its teachers are of any kind of :mod:`speechbrain_kd.teacher_sources`
(phase folders, inference folders, hub ids, stored logits). Labels are
matched by name (``teacher_label_map`` maps other names), and a teacher at
another sample rate gets its input resampled.

About 510 lines: the ensemble, its posterior average and the matching of
each teacher's labels and sample rate to the student's are one idea, the
teachers as the student sees them; where a teacher comes from is
:mod:`speechbrain_kd.teacher_sources`.
"""

import hashlib
import json
from pathlib import Path

import torch
import torchaudio

from speechbrain_kd.checkpoints import TrainedModel
from speechbrain_kd.teacher_sources import (
    PhaseTeacher,
    TeacherError,
    load_teacher,
)


class TeacherEnsemble(torch.nn.Module):
    """Frozen teachers that return their outputs stacked: ``[K, B, C]``.

    The teachers stay in evaluation mode whatever ``train()`` asks (a
    Brain's ``modules.train()`` cannot switch their BatchNorm to batch
    statistics or update the running ones), hold no gradients and run
    under ``torch.no_grad``. Teachers of any kind and model family mix
    (see :func:`teacher_kind`); each does its own feature extraction and
    channel adaptation.

    Labels are matched by name: a teacher whose outputs are the student's
    labels in another order is reordered. A teacher with other labels
    needs ``label_map`` (teacher label -> student label, ``None`` to drop
    one); then its output for a student label is the log of the summed
    posteriors of the teacher labels mapped to it (log-posteriors, which
    KD reads like logits), else it is refused.

    Sample rates: with ``sample_rate`` (the rate of the input, the
    student's), a teacher at another rate gets its input resampled;
    without it, the teachers must share one rate, which is the input's.

    Use :meth:`from_teacher_folders` to load teachers; the constructor
    takes models already loaded.

    Arguments
    ---------
    teachers : dict of str -> TrainedModel or teacher module
        Teacher name -> a :class:`~speechbrain_kd.checkpoints.TrainedModel`
        or a module made by :func:`load_teacher`, in the order of the
        output's first axis.
    folders : dict of str -> str, optional
        Where each teacher came from (named in error messages).
    labels : list of str, optional
        The student's labels, the order of the output's last axis.
        Default: the first teacher's.
    sample_rate : int, optional
        The rate of the waveforms the ensemble is given.
    label_map : dict of str -> str or None, optional
        Teacher label -> student label (``teacher_label_map``).

    Attributes
    ----------
    names : list of str
    labels : list of str
    sample_rate : int
    folders : dict of str -> str
    checkpoints : dict of str -> pathlib.Path or None
        The checkpoint folder each phase teacher's weights came from.
    specs : dict of str -> dict
        Each teacher's ``model_spec.json`` (or its kind, labels and rate).
    needs_ids : bool
        Some teacher is stored logits, looked up by clip ID.

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
    >>> TeacherEnsemble({"t1": teacher}, labels=["a", "c", "d"])
    Traceback (most recent call last):
    ...
    speechbrain_kd.teacher_sources.TeacherError: teacher 't1' (t1) does not ...
    """

    def __init__(
        self,
        teachers,
        folders=None,
        labels=None,
        sample_rate=None,
        label_map=None,
    ):
        super().__init__()
        if not teachers:
            raise ValueError("a teacher ensemble needs at least one teacher")
        self.names = [str(name) for name in teachers]
        self.folders = {
            name: str((folders or {}).get(name, name)) for name in self.names
        }
        members = [
            PhaseTeacher(t) if isinstance(t, TrainedModel) else t
            for t in teachers.values()
        ]
        self.teachers = torch.nn.ModuleList(members)
        self.sample_rate = _input_rate(
            self.names, members, self.folders, sample_rate
        )
        # YAML reads some names as numbers: labels are strings.
        self.label_map = {
            str(label): None if to is None else str(to)
            for label, to in (label_map or {}).items()
        }
        self.labels, self._groups = _match_labels(
            self.names, members, self.folders, labels, self.label_map
        )
        self.checkpoints = {
            name: member.checkpoint
            for name, member in zip(self.names, members, strict=True)
        }
        self.specs = {
            name: member.spec
            for name, member in zip(self.names, members, strict=True)
        }
        self.needs_ids = any(member.needs_ids for member in members)
        self.requires_grad_(False)
        super().train(False)

    @classmethod
    def from_teacher_folders(
        cls,
        folders,
        labels=None,
        device="cpu",
        sample_rate=None,
        label_map=None,
    ):
        """Load the teachers a recipe's ``teacher_folders`` names.

        Each entry is a phase output folder (its best model), an inference
        folder, stored logits or a hub id (:func:`teacher_kind`).

        Arguments
        ---------
        folders : str, list of str or dict of str -> str
            A list names the teachers ``"<index>:<folder name>"``; a dict
            gives the names.
        labels : list of str, optional
            The student's labels (matched by name, see the class).
        device : str or torch.device
        sample_rate : int, optional
            The rate of the input (the student's): teachers at another
            rate get it resampled.
        label_map : dict of str -> str or None, optional
            ``teacher_label_map``.

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
        >>> ensemble = TeacherEnsemble.from_teacher_folders([phase, phase])
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
            name: load_teacher(folder, device=device)
            for name, folder in folders.items()
        }
        folders = {name: str(folder) for name, folder in folders.items()}
        ensemble = cls(teachers, folders, labels, sample_rate, label_map)
        return ensemble.to(device)

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
    def forward(self, wavs, lengths=None, ids=None):
        """Waveforms -> stacked teacher outputs, in the student's labels.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` or ``[B, T, C]`` at :attr:`sample_rate`.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.
        ids : list of str, optional
            Clip IDs, needed by stored-logits teachers (:attr:`needs_ids`).

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
        outputs = []
        for member, groups in zip(self.teachers, self._groups, strict=True):
            view = wavs
            rate = member.sample_rate
            if rate is not None and rate != self.sample_rate:
                # Time is axis 1; torchaudio resamples the last axis.
                view = torchaudio.functional.resample(
                    wavs.movedim(1, -1).contiguous(), self.sample_rate, rate
                ).movedim(-1, 1)
            out = member(view, lengths, ids).float()
            outputs.append(_to_student_labels(out, groups))
        return torch.stack(outputs)

    def check_clips(self, ids, where):
        """Refuse clips that a stored-logits teacher does not hold.

        Arguments
        ---------
        ids : list of str
            The clip IDs the teachers will be asked for.
        where : str
            Where the IDs come from (named in the error).

        Example
        -------
        >>> from speechbrain_kd.checkpoints import TrainedModel
        >>> teacher = TrainedModel(torch.nn.Identity(), torch.nn.Identity(),
        ...                        ["a"], 8000, {}, None)
        >>> TeacherEnsemble({"t": teacher}).check_clips(["c1"], "m.csv")
        """
        for name, member in zip(self.names, self.teachers, strict=True):
            if member.needs_ids:
                member.check_clips(ids, where, f"teacher {name!r}")

    def fingerprint(self):
        """SHA-256 of the teachers' names, specs, content and label matching.

        The content is digested when the ensemble is built: for a phase,
        the content of each teacher's ``embedding_model.ckpt`` and
        ``classifier.ckpt`` (or, for a teacher given in memory without a
        checkpoint, its parameters and buffers); for an inference folder or
        hub model, its ``hyperparams.yaml`` and every file its pretrainer
        loaded (checkpoints, label encoder); for stored logits, the file.
        Another checkpoint, retrained weights, changed files, another
        label map or another teacher order give another fingerprint.

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
        for name, member, groups in zip(
            self.names, self.teachers, self._groups, strict=True
        ):
            digest.update(json.dumps(name).encode())
            digest.update(json.dumps(member.spec, sort_keys=True).encode())
            digest.update(member.digest.encode())
            digest.update(json.dumps(groups).encode())
        return digest.hexdigest()


def _input_rate(names, members, folders, sample_rate):
    """The rate of the ensemble's input; refuse rates that cannot mix."""
    if sample_rate is not None:
        return int(sample_rate)
    rated = [
        (name, member)
        for name, member in zip(names, members, strict=True)
        if member.sample_rate is not None
    ]
    if not rated:
        raise TeacherError(
            f"the teachers {names} take any rate (stored logits): give the "
            "ensemble the sample_rate of its input"
        )
    first, reference = rated[0]
    for name, member in rated:
        if int(member.sample_rate) != int(reference.sample_rate):
            raise TeacherError(
                f"teacher {name!r} ({folders[name]}) takes "
                f"{member.sample_rate} Hz but teacher {first!r} "
                f"({folders[first]}) takes {reference.sample_rate} Hz: "
                "teachers must share one sample rate (or give the ensemble "
                "the sample_rate of its input, to resample per teacher)"
            )
    return int(reference.sample_rate)


def _match_labels(names, members, folders, labels, label_map):
    """The output labels and, per teacher, the outputs behind each label.

    ``groups[k][j]`` lists the outputs of teacher ``k`` whose (mapped)
    label is output label ``j``; ``None`` when teacher ``k``'s outputs are
    the output labels in order.
    """
    known = {label for member in members for label in member.labels}
    unknown = [label for label in label_map if label not in known]
    if unknown:
        raise TeacherError(
            f"teacher_label_map maps {unknown}, which no teacher has (their "
            f"labels: {sorted(known)})"
        )
    if labels is None:
        reference, against = [], f"teacher {names[0]!r} ({folders[names[0]]})"
        for label in members[0].labels:
            mapped = label_map.get(label, label)
            if mapped is not None and mapped not in reference:
                reference.append(mapped)
    else:
        reference, against = [str(label) for label in labels], "the student"
    all_groups = []
    for name, member in zip(names, members, strict=True):
        mapped = [label_map.get(label, label) for label in member.labels]
        extra = [
            label
            for label, to in zip(member.labels, mapped, strict=True)
            if to is not None and to not in reference
        ]
        groups = [
            [i for i, to in enumerate(mapped) if to == label]
            for label in reference
        ]
        lacking = [
            label
            for label, group in zip(reference, groups, strict=True)
            if not group
        ]
        if extra or lacking:
            parts = []
            if extra:
                parts.append(f"the teacher has {extra} that it lacks")
            if lacking:
                parts.append(f"the teacher lacks {lacking}")
            raise TeacherError(
                f"teacher {name!r} ({folders[name]}) does not match "
                f"{against}'s labels: {' and '.join(parts)}; map them with "
                "teacher_label_map (teacher label -> student label, null to "
                "drop one)"
            )
        if all(len(g) == 1 for g in groups) and len(mapped) == len(groups):
            order = [g[0] for g in groups]
            groups = None if order == list(range(len(order))) else order
        all_groups.append(groups)
    return reference, all_groups


def _to_student_labels(out, groups):
    """A teacher's outputs ``[B, C_t]`` -> ``[B, C]`` in the output labels."""
    if groups is None:
        return out
    if all(isinstance(g, int) for g in groups):  # a reordering
        return out[:, groups]
    log_probs = torch.log_softmax(out, dim=-1)
    return torch.stack(
        [torch.logsumexp(log_probs[:, group], dim=-1) for group in groups],
        dim=-1,
    )


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
