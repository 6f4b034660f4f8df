"""Losses for knowledge distillation and embedding learning.

Task-independent: any SpeechBrain classification recipe (speaker, keyword,
event, music) can use them with clip-level logits ``[batch, classes]``.

About 540 lines: the center loss, mixup (inputs and teacher logits) and
the distillation loss with its option checks, its module form and
:func:`build_kd_loss` (the published KD settings by name) are the losses a
phase's YAML names, kept in the one module it imports them from.
"""

import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml

from speechbrain_kd.hparams import fragments_folder


class CenterLoss(torch.nn.Module):
    """Center loss with centers that learn at their own rate.

    Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for
    Deep Face Recognition", ECCV 2016. The value is
    ``weight * 0.5 * mean_i ||e_i - c_{y_i}||^2`` and the embeddings
    receive the gradient of this weighted loss. The centers, however,
    receive the gradient of the UNWEIGHTED loss
    ``0.5 * mean_i ||e_i - c_{y_i}||^2``: the forward pass uses
    ``c_eff = c.detach() + (c - c.detach()) / weight``, equal to ``c`` in
    value but with its gradient divided by ``weight``. A separate optimiser
    (SGD with rate ``alpha = 0.5``, Wen et al.'s center update; see
    ``center_opt_class`` in :class:`speechbrain_kd.brain.
    SceneClassificationBrain`) then moves the centers toward their class
    means at that rate whatever the weight (5e-5 in Jung et al., IEEE
    Access 2020, which would otherwise freeze them). Do not give the
    centers to the network's optimiser.

    Arguments
    ---------
    n_classes : int
    embedding_dim : int
    weight : float
        Weight of the loss in the total objective (> 0).

    Example
    -------
    >>> loss_fn = CenterLoss(3, 2, weight=0.1)
    >>> emb = torch.randn(4, 2, requires_grad=True)
    >>> loss = loss_fn(emb, torch.tensor([0, 1, 2, 0]))
    >>> loss.backward()
    >>> loss_fn.centers.grad.shape
    torch.Size([3, 2])
    """

    def __init__(self, n_classes, embedding_dim, weight=5e-5):
        super().__init__()
        if not weight > 0:
            raise ValueError(
                f"center loss weight must be > 0, got {weight} (leave the "
                "center loss out to disable it)"
            )
        self.config = {
            "n_classes": n_classes,
            "embedding_dim": embedding_dim,
            "weight": weight,
        }
        self.weight = weight
        self.centers = torch.nn.Parameter(torch.randn(n_classes, embedding_dim))

    def forward(self, embeddings, targets):
        """Return the weighted center loss (a scalar).

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[B, embedding_dim]``.
        targets : torch.Tensor
            ``[B]`` class indices.

        Returns
        -------
        torch.Tensor
        """
        n_classes, dim = self.centers.shape
        if embeddings.dim() != 2 or embeddings.shape[1] != dim:
            raise ValueError(
                f"CenterLoss expects embeddings [batch, {dim}], got "
                f"{tuple(embeddings.shape)}"
            )
        targets = targets.view(-1)
        if len(targets) and (targets.min() < 0 or targets.max() >= n_classes):
            raise ValueError(
                f"targets must lie in [0, {n_classes}), got {targets.tolist()}"
            )
        centers = self.centers
        # Same value as the centers; gradient divided by the weight.
        scaled = centers.detach() + (centers - centers.detach()) / self.weight
        diff = embeddings - scaled[targets]
        return self.weight * 0.5 * diff.pow(2).sum(dim=-1).mean()


def mixup(inputs, targets, alpha, generator=None):
    """Mix every example with another example of the batch.

    Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk
    Minimization", ICLR 2018: ``x = lam * x_i + (1 - lam) * x_perm(i)``
    with ``lam ~ Beta(alpha, alpha)`` and a random permutation ``perm``.
    The loss of a mixed batch is ``lam * L(y) + (1 - lam) * L(y_b)``
    (index targets), or the loss against ``lam * y + (1 - lam) * y_b``
    (one-hot or soft targets). The first targets are ``targets``
    themselves, so only the partners' are returned.

    Arguments
    ---------
    inputs : torch.Tensor
        ``[batch, ...]``.
    targets : torch.Tensor
        ``[batch]`` class indices or ``[batch, classes]`` one-hot/soft.
    alpha : float
        Beta parameter (> 0); 0.1 in Jung et al., IEEE Access 2020.
    generator : torch.Generator, optional
        For lambda and the permutation (torch's seeded global generator
        otherwise).

    Returns
    -------
    mixed : torch.Tensor
        Like ``inputs``.
    targets_b : torch.Tensor
        ``targets[perm]``, the partners' targets.
    lam : float

    Example
    -------
    >>> gen = torch.Generator().manual_seed(0)
    >>> x, y = torch.arange(4.0)[:, None], torch.eye(4)
    >>> mixed, y_b, lam = mixup(x, y, alpha=0.4, generator=gen)
    >>> mixed_y = lam * y + (1 - lam) * y_b  # soft targets
    >>> torch.allclose(mixed, mixed_y @ x)
    True
    """
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    if targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"mixup got {inputs.shape[0]} inputs but {targets.shape[0]} targets"
        )
    if generator is None:
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
    else:  # Beta.sample has no generator: draw it through two Gammas.
        concentration = torch.tensor([alpha, alpha], dtype=torch.float64)
        g1, g2 = torch._standard_gamma(concentration, generator=generator)
        lam = float(g1 / (g1 + g2))
    perm = torch.randperm(
        inputs.shape[0], generator=generator, device="cpu"
    ).to(inputs.device)
    mixed = lam * inputs + (1 - lam) * inputs[perm]
    return mixed, targets[perm.to(targets.device)], lam


def mix_teacher_logits(teacher_logits, partners, lam, temperature):
    """Teacher logits for a mixed batch: the mix of the two clips' labels.

    When the student sees ``lam * x_i + (1 - lam) * x_partners[i]``
    (:func:`mixup`), its soft label is the same mix of the two clips'
    posteriors at ``temperature``: the returned logits ``z`` are such that
    ``softmax(z / T) = lam * softmax(t_i / T) + (1 - lam) *
    softmax(t_partner / T)`` for every teacher, so any loss that softens
    teacher logits by ``T`` sees the mixed soft label (Beyer et al.,
    "Knowledge distillation: A good teacher is patient and consistent",
    CVPR 2022: the teacher's label must match the student's input).

    Arguments
    ---------
    teacher_logits : torch.Tensor
        ``[K, B, C]`` or ``[B, C]``.
    partners : torch.Tensor
        ``[B]`` indices into the batch (the permutation of :func:`mixup`).
    lam : float
        Weight of each clip itself, 0 to 1.
    temperature : float

    Returns
    -------
    torch.Tensor
        Like ``teacher_logits``.

    Example
    -------
    >>> t = torch.tensor([[4.0, 0.0], [0.0, 2.0]])
    >>> z = mix_teacher_logits(t, torch.tensor([1, 0]), 0.75, 2.0)
    >>> mixed = 0.75 * (t / 2).softmax(-1) + 0.25 * (t[[1, 0]] / 2).softmax(-1)
    >>> torch.allclose((z / 2).softmax(-1), mixed)
    True
    """
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    # log(0) = -inf keeps lam = 0 or 1 exact (logaddexp ignores that term).
    own, other = torch.tensor([lam, 1.0 - lam], dtype=log_p.dtype).log()
    mixed = torch.logaddexp(log_p + own, log_p[..., partners, :] + other)
    return temperature * mixed


REDUCTIONS = ("mean", "sum", "none")
TEACHER_REDUCTIONS = ("sum", "mean")
ENSEMBLES = ("per_teacher", "average_probs")


def _check_kd_options(
    temperature,
    hard_label_weight,
    teacher_weights,
    teacher_reduction,
    ensemble,
    reduction,
):
    """Raise a ValueError naming the first bad option."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= hard_label_weight <= 1.0:
        raise ValueError(
            f"hard_label_weight must be in [0, 1], got {hard_label_weight}"
        )
    if teacher_reduction not in TEACHER_REDUCTIONS:
        raise ValueError(
            f"teacher_reduction must be one of "
            f"{', '.join(TEACHER_REDUCTIONS)}; got {teacher_reduction!r}"
        )
    if ensemble not in ENSEMBLES:
        raise ValueError(
            f"ensemble must be one of {', '.join(ENSEMBLES)}; got {ensemble!r}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(REDUCTIONS)}; got "
            f"{reduction!r}"
        )
    if teacher_weights is not None:
        try:
            weights = torch.as_tensor(teacher_weights, dtype=torch.float)
        except (TypeError, ValueError, RuntimeError):
            weights = torch.zeros(0)  # not numbers: refused just below
        if weights.dim() != 1 or len(weights) == 0:
            raise ValueError(
                f"teacher_weights must be a list of numbers, got "
                f"{teacher_weights!r}"
            )
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(
                f"teacher_weights must be >= 0 with a positive sum, got "
                f"{weights.tolist()}"
            )


def distillation_loss(
    student_logits,
    teacher_logits,
    targets=None,
    *,
    temperature=2.0,
    hard_label_weight=0.0,
    t2_scaling=True,
    teacher_weights=None,
    teacher_reduction="sum",
    ensemble="per_teacher",
    reduction="mean",
):
    r"""Knowledge-distillation loss of a student against K teachers.

    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    NIPS workshop 2015; the multi-teacher form of Jung et al., "Knowledge
    Distillation in Acoustic Scene Classification", IEEE Access 2020. With
    ``s`` the student logits ``[B, C]``, ``t_k`` the logits of teacher
    ``k`` (``[K, B, C]``), ``T`` the temperature, ``w_k`` the teacher
    weights (default 1), ``p_k = softmax(t_k / T)`` and
    ``q = softmax(s / T)``, per clip ``b``:

    - ``KL_k[b] = sum_c p_k[b, c] (log p_k[b, c] - log q[b, c])``;
    - ``ensemble="per_teacher"``: ``KD[b] = sum_k w_k KL_k[b]``
      (``teacher_reduction="sum"``) or ``sum_k w_k KL_k[b] / sum_k w_k``
      (``"mean"``);
    - ``ensemble="average_probs"``: one ensemble soft label
      ``p = sum_k w_k p_k / sum_k w_k`` and
      ``KD[b] = sum_c p (log p - log q)`` (``teacher_reduction`` unused);
    - ``t2_scaling=True``: ``KD <- T^2 KD`` (Hinton et al.: keeps the
      gradient size independent of ``T``);
    - ``loss[b] = lambda CE(s[b], y[b]) + (1 - lambda) KD[b]`` with
      ``lambda = hard_label_weight`` (the CE term only when
      ``lambda > 0``);
    - ``reduction``: ``"mean"`` over the batch (the usual "batchmean" KL),
      ``"sum"``, or ``"none"`` (``[B]``).

    Computed in log space (``log_softmax``, ``kl_div(log_target=True)``,
    ``logsumexp`` for the averaged label), so confident teachers do not
    produce ``0 * log 0``. The teachers never receive gradients.

    Settings of known systems:

    - the published DCASE 2019 script of Jung et al. (KL summed over the
      teachers, T = 2, batch mean, no hard-label term):
      ``temperature=2.0, t2_scaling=False, teacher_reduction="sum",
      hard_label_weight=0.0`` (:func:`build_kd_loss` ``"published"``);
    - CP-JKU's DCASE 2023 system (``0.02 CE + 0.98 T^2 KL``, T = 2, a
      teacher ensemble): ``temperature=2.0, t2_scaling=True,
      hard_label_weight=0.02, ensemble="average_probs"``
      (:func:`build_kd_loss` ``"cpjku"``).

    Arguments
    ---------
    student_logits : torch.Tensor
        ``[B, C]``.
    teacher_logits : torch.Tensor
        ``[K, B, C]`` (or ``[B, C]`` for one teacher).
    targets : torch.Tensor, optional
        Class indices ``[B]``; needed when ``hard_label_weight > 0``.
    temperature : float
        ``T > 0``.
    hard_label_weight : float
        ``lambda`` in ``[0, 1]``.
    t2_scaling : bool
    teacher_weights : sequence of float, optional
        ``K`` non-negative weights.
    teacher_reduction : str
        ``"sum"`` or ``"mean"`` (``ensemble="per_teacher"`` only).
    ensemble : str
        ``"per_teacher"`` or ``"average_probs"``.
    reduction : str
        ``"mean"``, ``"sum"`` or ``"none"`` over the batch.

    Returns
    -------
    torch.Tensor
        A scalar (``[B]`` with ``reduction="none"``).

    Example
    -------
    >>> student = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(distillation_loss(student, student[None]))  # same: no loss
    0.0
    >>> teachers = torch.tensor([[[0.0, 2.0, 0.0]], [[0.0, 0.0, 2.0]]])
    >>> published = distillation_loss(student, teachers, t2_scaling=False)
    >>> scaled = distillation_loss(student, teachers)  # T^2 = 4
    >>> round(float(published), 4), round(float(scaled / published), 4)
    (0.9482, 4.0)
    >>> distillation_loss(student, teachers, temperature=0)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be > 0, got 0
    """
    _check_kd_options(
        temperature,
        hard_label_weight,
        teacher_weights,
        teacher_reduction,
        ensemble,
        reduction,
    )
    if student_logits.dim() != 2:
        raise ValueError(
            f"student logits must be [batch, classes], got "
            f"{tuple(student_logits.shape)}"
        )
    if teacher_logits.dim() == 2:
        teacher_logits = teacher_logits.unsqueeze(0)
    if teacher_logits.dim() != 3 or teacher_logits.shape[1:] != (
        student_logits.shape
    ):
        raise ValueError(
            f"teacher logits {tuple(teacher_logits.shape)} do not match "
            f"student logits {tuple(student_logits.shape)} (expected "
            "[K, B, C] and [B, C])"
        )
    n_teachers = teacher_logits.shape[0]
    device = student_logits.device
    if teacher_weights is None:
        weights = torch.ones(n_teachers, device=device)
    else:
        weights = torch.as_tensor(
            teacher_weights, dtype=torch.float, device=device
        )
        if weights.shape != (n_teachers,):
            raise ValueError(
                f"{len(weights)} teacher_weights given for {n_teachers} "
                "teachers"
            )
    if hard_label_weight > 0 and targets is None:
        raise ValueError(
            f"hard_label_weight={hard_label_weight} needs the targets"
        )
    # Half-precision logits (mixed precision) are computed in float32.
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    student_logits = student_logits.to(dtype)
    weights = weights.to(dtype)
    teacher_logits = teacher_logits.detach().to(dtype)
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    if ensemble == "average_probs":
        # log(sum_k w_k p_k / sum_k w_k), stable even when some w_k = 0.
        log_w = torch.log(weights / weights.sum())
        log_p = torch.logsumexp(log_p + log_w[:, None, None], dim=0)
        kd = F.kl_div(log_q, log_p, reduction="none", log_target=True)
        kd = kd.sum(-1)
    else:
        per_teacher = F.kl_div(
            log_q.expand_as(log_p), log_p, reduction="none", log_target=True
        ).sum(-1)  # [K, B]
        kd = (weights[:, None] * per_teacher).sum(0)
        if teacher_reduction == "mean":
            kd = kd / weights.sum()
    if t2_scaling:
        kd = kd * temperature**2
    loss = kd
    if hard_label_weight > 0:
        ce = F.cross_entropy(
            student_logits, targets.to(device), reduction="none"
        )
        loss = hard_label_weight * ce + (1 - hard_label_weight) * kd
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class DistillationLoss(torch.nn.Module):
    """:func:`distillation_loss` with its options fixed, for YAML.

    The options are checked when the module is built (when the YAML is
    loaded), not at the first training step. ``config`` holds them.

    Arguments
    ---------
    temperature : float
    hard_label_weight : float
    t2_scaling : bool
    teacher_weights : sequence of float, optional
    teacher_reduction : str
    ensemble : str
    reduction : str
        See :func:`distillation_loss`.

    Example
    -------
    >>> loss = DistillationLoss(temperature=2.0, hard_label_weight=0.02)
    >>> s, t = torch.randn(4, 3), torch.randn(2, 4, 3)
    >>> float(loss(s, t, torch.tensor([0, 1, 2, 0]))) > 0
    True
    >>> DistillationLoss(ensemble="vote")
    Traceback (most recent call last):
    ...
    ValueError: ensemble must be one of per_teacher, average_probs; got 'vote'
    """

    def __init__(
        self,
        temperature=2.0,
        hard_label_weight=0.0,
        t2_scaling=True,
        teacher_weights=None,
        teacher_reduction="sum",
        ensemble="per_teacher",
        reduction="mean",
    ):
        super().__init__()
        _check_kd_options(
            temperature,
            hard_label_weight,
            teacher_weights,
            teacher_reduction,
            ensemble,
            reduction,
        )
        if teacher_weights is not None:  # plain floats in the config
            teacher_weights = [float(w) for w in teacher_weights]
        self.config = {
            "temperature": temperature,
            "hard_label_weight": hard_label_weight,
            "t2_scaling": t2_scaling,
            "teacher_weights": teacher_weights,
            "teacher_reduction": teacher_reduction,
            "ensemble": ensemble,
            "reduction": reduction,
        }

    def forward(self, student_logits, teacher_logits, targets=None):
        """Return the loss (see :func:`distillation_loss`).

        Arguments
        ---------
        student_logits : torch.Tensor
            ``[B, C]``.
        teacher_logits : torch.Tensor
            ``[K, B, C]`` or ``[B, C]``.
        targets : torch.Tensor, optional
            ``[B]`` class indices.

        Returns
        -------
        torch.Tensor
        """
        return distillation_loss(
            student_logits, teacher_logits, targets, **self.config
        )


def build_kd_loss(name, **settings):
    """Build the ``kd_loss`` of the package's KD fragment ``kd/<name>.yaml``.

    A recipe's YAML calls it with ``!apply:`` (a path in ``!include:``
    would only work beside the source tree); see
    :mod:`speechbrain_kd.hparams`.

    Arguments
    ---------
    name : str
        ``"published"`` (Jung et al.'s script) or ``"cpjku"`` (CP-JKU's
        DCASE 2023 loss).
    **settings
        Values of the fragment's settings (``temperature``,
        ``hard_label_weight``); any other name is an error.

    Returns
    -------
    DistillationLoss

    Example
    -------
    >>> build_kd_loss("published", hard_label_weight=0.5).config["t2_scaling"]
    False
    >>> build_kd_loss("hinton")
    Traceback (most recent call last):
    ...
    ValueError: unknown KD loss 'hinton'; known: cpjku, published (...)
    """
    folder = fragments_folder("kd")
    known = sorted(path.stem for path in folder.glob("*.yaml"))
    if name not in known:
        raise ValueError(
            f"unknown KD loss {name!r}; known: {', '.join(known)} "
            f"(the fragments of {folder})"
        )
    with open(folder / f"{name}.yaml", encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, settings)["kd_loss"]
