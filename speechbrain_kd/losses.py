"""Losses for knowledge distillation and embedding learning.

Task-independent: any SpeechBrain classification recipe (speaker, keyword,
event, music) can use them with clip-level logits ``[batch, classes]``.
"""

import torch
import torch.nn.functional as F


class CenterLoss(torch.nn.Module):
    """Center loss with centers that learn at their own rate.

    Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for
    Deep Face Recognition", ECCV 2016. Returns
    ``weight * 0.5 * mean_i ||e_i - c_{y_i}||^2``. The embeddings receive
    the gradient of this weighted loss, but the centers receive the gradient
    of the UNWEIGHTED loss, so that a separate optimiser (SGD with the
    paper's center rate 0.5) moves them at that rate whatever the weight
    (5e-5 in Jung et al., IEEE Access 2020, which would otherwise freeze
    them; their published script never optimised the centers).

    Arguments
    ---------
    n_classes : int
    embedding_dim : int
    weight : float
        Weight of the loss in the total objective.

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
        if weight <= 0:
            raise ValueError(f"center loss weight must be > 0, got {weight}")
        self.weight = weight
        self.centers = torch.nn.Parameter(torch.randn(n_classes, embedding_dim))

    def forward(self, embeddings, targets):
        """Return the weighted center loss of ``embeddings`` ``[B, E]``."""
        centers = self.centers
        # Same value as the centers; gradient scaled by 1 / weight.
        scaled = centers.detach() + (centers - centers.detach()) / self.weight
        diff = embeddings - scaled[targets]
        return self.weight * 0.5 * diff.pow(2).sum(dim=-1).mean()


def mixup(inputs, targets, alpha, generator=None):
    """Mix every example with another of the batch.

    Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk
    Minimization", ICLR 2018: ``x = lam * x_i + (1 - lam) * x_perm(i)`` with
    ``lam ~ Beta(alpha, alpha)``; the loss is
    ``lam * L(y_i) + (1 - lam) * L(y_perm(i))``.

    Arguments
    ---------
    inputs : torch.Tensor
        ``[batch, ...]``.
    targets : torch.Tensor
        ``[batch]`` class indices.
    alpha : float
    generator : torch.Generator, optional

    Returns
    -------
    mixed : torch.Tensor
    targets_b : torch.Tensor
        The targets of the partners.
    lam : float

    Example
    -------
    >>> x, y = torch.ones(4, 10), torch.arange(4)
    >>> mixed, y_b, lam = mixup(x, y, alpha=0.1)
    >>> torch.allclose(mixed, x), 0.0 <= lam <= 1.0, sorted(y_b.tolist())
    (True, True, [0, 1, 2, 3])
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    beta = torch.distributions.Beta(alpha, alpha)
    if generator is None:
        lam = float(beta.sample())
    else:  # Beta has no generator argument: draw through two Gammas.
        g1 = torch._standard_gamma(torch.tensor([alpha]), generator=generator)
        g2 = torch._standard_gamma(torch.tensor([alpha]), generator=generator)
        lam = float(g1 / (g1 + g2))
    perm = torch.randperm(
        inputs.shape[0], generator=generator, device="cpu"
    ).to(inputs.device)
    mixed = lam * inputs + (1 - lam) * inputs[perm]
    return mixed, targets[perm], lam


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
):
    r"""Knowledge-distillation loss of a student against K teachers.

    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    2015; the multi-teacher form of Jung et al., IEEE Access 2020. With
    ``s`` the student logits ``[B, C]``, ``t_k`` the logits of teacher ``k``
    ``[K, B, C]``, ``T`` the temperature, ``w_k`` the teacher weights
    (default 1), ``p_k = softmax(t_k / T)`` and ``q = softmax(s / T)``:

    - ``KL_k = mean_b sum_c p_k log(p_k / q)`` (batch mean);
    - ``ensemble="per_teacher"``: ``KD = sum_k w_k KL_k``
      (``teacher_reduction="sum"``) or ``sum_k w_k KL_k / sum_k w_k``
      (``"mean"``);
    - ``ensemble="average_probs"``: ``p = sum_k w_k p_k / sum_k w_k`` and
      ``KD = mean_b sum_c p log(p / q)`` (one ensemble soft label);
    - ``t2_scaling``: ``KD <- T^2 KD`` (keeps gradient sizes comparable
      across temperatures);
    - total: ``lambda CE(s, y) + (1 - lambda) KD`` with
      ``lambda = hard_label_weight``.

    The published DCASE 2019 script of Jung et al.: ``temperature=2,
    t2_scaling=False, teacher_reduction="sum", hard_label_weight=0``.
    CP-JKU's DCASE 2023 system: ``temperature=2, t2_scaling=True,
    hard_label_weight=0.02`` (one teacher or ``ensemble="average_probs"``).

    Arguments
    ---------
    student_logits : torch.Tensor
        ``[B, C]``.
    teacher_logits : torch.Tensor
        ``[K, B, C]`` (or ``[B, C]`` for one teacher). Never receives
        gradients.
    targets : torch.Tensor, optional
        Class indices ``[B]``; needed when ``hard_label_weight > 0``.
    temperature : float
    hard_label_weight : float
        In ``[0, 1]``.
    t2_scaling : bool
    teacher_weights : sequence of float, optional
        ``K`` weights.
    teacher_reduction : str
        ``"sum"`` or ``"mean"`` (``ensemble="per_teacher"`` only).
    ensemble : str
        ``"per_teacher"`` or ``"average_probs"``.

    Returns
    -------
    torch.Tensor
        A scalar.

    Example
    -------
    >>> student = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(distillation_loss(student, student[None]))  # same: no loss
    0.0
    >>> teachers = torch.randn(2, 1, 3)
    >>> float(distillation_loss(student, teachers)) > 0
    True
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= hard_label_weight <= 1.0:
        raise ValueError(
            f"hard_label_weight must be in [0, 1], got {hard_label_weight}"
        )
    if teacher_reduction not in ("sum", "mean"):
        raise ValueError(
            f"teacher_reduction must be 'sum' or 'mean', not "
            f"{teacher_reduction!r}"
        )
    if ensemble not in ("per_teacher", "average_probs"):
        raise ValueError(
            f"ensemble must be 'per_teacher' or 'average_probs', not "
            f"{ensemble!r}"
        )
    if teacher_logits.dim() == 2:
        teacher_logits = teacher_logits.unsqueeze(0)
    if teacher_logits.shape[1:] != student_logits.shape:
        raise ValueError(
            f"teacher logits {tuple(teacher_logits.shape)} do not match "
            f"student logits {tuple(student_logits.shape)} (expected "
            "[K, B, C] and [B, C])"
        )
    n_teachers = teacher_logits.shape[0]
    weights = torch.ones(n_teachers, device=student_logits.device)
    if teacher_weights is not None:
        weights = torch.as_tensor(
            teacher_weights, dtype=torch.float, device=student_logits.device
        )
        if weights.shape != (n_teachers,):
            raise ValueError(
                f"{len(weights)} teacher weights given for {n_teachers} "
                "teachers"
            )
    teacher_logits = teacher_logits.detach().float()
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    if ensemble == "average_probs":
        p = (weights[:, None, None] * log_p.exp()).sum(0) / weights.sum()
        kd = F.kl_div(log_q, p, reduction="batchmean")
    else:
        per_teacher = torch.stack(
            [
                F.kl_div(log_q, lp, reduction="batchmean", log_target=True)
                for lp in log_p
            ]
        )
        kd = (weights * per_teacher).sum()
        if teacher_reduction == "mean":
            kd = kd / weights.sum()
    if t2_scaling:
        kd = kd * temperature**2
    if hard_label_weight == 0.0:
        return kd
    if targets is None:
        raise ValueError("hard_label_weight > 0 needs the targets")
    ce = F.cross_entropy(student_logits.float(), targets)
    return hard_label_weight * ce + (1 - hard_label_weight) * kd


class DistillationLoss(torch.nn.Module):
    """:func:`distillation_loss` with its options fixed, for YAML.

    Arguments
    ---------
    **options
        Keyword options of :func:`distillation_loss`.

    Example
    -------
    >>> loss = DistillationLoss(temperature=2.0, hard_label_weight=0.02)
    >>> s, t = torch.randn(4, 3), torch.randn(2, 4, 3)
    >>> float(loss(s, t, torch.tensor([0, 1, 2, 0]))) > 0
    True
    """

    def __init__(self, **options):
        super().__init__()
        # Fail on a bad option when the YAML is loaded, not at the first step.
        n_teachers = len(options.get("teacher_weights") or [None])
        distillation_loss(
            torch.zeros(1, 2),
            torch.zeros(n_teachers, 1, 2),
            torch.zeros(1, dtype=torch.long),
            **options,
        )
        self.options = options

    def forward(self, student_logits, teacher_logits, targets=None):
        """Return the loss (see :func:`distillation_loss`)."""
        return distillation_loss(
            student_logits, teacher_logits, targets, **self.options
        )
