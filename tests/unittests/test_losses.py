"""KD and center losses: each formula against a hand computation."""

import pytest
import torch

from speechbrain_kd.losses import (
    CenterLoss,
    DistillationLoss,
    distillation_loss,
    mix_teacher_logits,
    mixup,
)


def manual_kl(teacher, student, temperature):
    """sum_c p (log p - log q), batch mean, written out by hand."""
    p = torch.softmax(teacher / temperature, -1)
    q = torch.softmax(student / temperature, -1)
    return (p * (p.log() - q.log())).sum(-1).mean()


@pytest.fixture
def logits():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(5, 4, generator=gen), torch.randn(3, 5, 4, generator=gen)


def test_published_setting_sums_kl_over_teachers(logits):
    s, t = logits
    loss = distillation_loss(s, t, temperature=2.0, t2_scaling=False)
    expected = sum(manual_kl(t[k], s, 2.0) for k in range(3))
    assert torch.allclose(loss, expected, atol=1e-6)


def test_t2_scaling_multiplies_by_t_squared(logits):
    s, t = logits
    plain = distillation_loss(s, t, temperature=3.0, t2_scaling=False)
    scaled = distillation_loss(s, t, temperature=3.0, t2_scaling=True)
    assert torch.allclose(scaled, 9.0 * plain)


def test_weighted_mean_over_teachers(logits):
    s, t = logits
    w = [0.5, 1.0, 2.0]
    loss = distillation_loss(
        s, t, teacher_weights=w, teacher_reduction="mean", t2_scaling=False
    )
    expected = sum(w[k] * manual_kl(t[k], s, 2.0) for k in range(3)) / 3.5
    assert torch.allclose(loss, expected, atol=1e-6)


def test_average_probs_uses_one_ensemble_label(logits):
    s, t = logits
    loss = distillation_loss(s, t, ensemble="average_probs", t2_scaling=False)
    p = torch.softmax(t / 2.0, -1).mean(0)
    q = torch.softmax(s / 2.0, -1)
    expected = (p * (p.log() - q.log())).sum(-1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    per_teacher = distillation_loss(
        s, t, teacher_reduction="mean", t2_scaling=False
    )
    assert not torch.allclose(loss, per_teacher)


def test_average_probs_equals_per_teacher_for_one_teacher(logits):
    s, t = logits
    a = distillation_loss(s, t[:1], ensemble="average_probs")
    b = distillation_loss(s, t[:1], ensemble="per_teacher")
    assert torch.allclose(a, b, atol=1e-6)


def test_hard_label_weight_mixes_cross_entropy(logits):
    s, t = logits
    y = torch.tensor([0, 1, 2, 3, 0])
    lam = 0.02  # CP-JKU
    loss = distillation_loss(s, t[:1], y, hard_label_weight=lam)
    kd = 4.0 * manual_kl(t[0], s, 2.0)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(loss, lam * ce + (1 - lam) * kd, atol=1e-6)


def test_zero_when_student_equals_teacher(logits):
    s, _ = logits
    assert float(distillation_loss(s, s[None])) == pytest.approx(0.0, abs=1e-7)
    assert float(distillation_loss(s, torch.stack([s, s]))) == pytest.approx(
        0.0, abs=1e-7
    )


def test_gradient_matches_the_closed_form(logits):
    # d KL / d s = (q - p) / (T * B) for one teacher.
    s, t = logits
    s = s.clone().requires_grad_()
    teacher = t[0].clone().requires_grad_()
    distillation_loss(
        s, teacher[None], temperature=2.0, t2_scaling=False
    ).backward()
    p = torch.softmax(t[0] / 2.0, -1)
    q = torch.softmax(s.detach() / 2.0, -1)
    assert torch.allclose(s.grad, (q - p) / (2.0 * 5), atol=1e-6)
    assert teacher.grad is None


@pytest.mark.parametrize("ensemble", ["per_teacher", "average_probs"])
def test_gradient_matches_finite_differences(logits, ensemble):
    s, t = (x.double() for x in logits)
    y = torch.tensor([0, 1, 2, 3, 0])

    def loss(student):
        return distillation_loss(
            student,
            t,
            y,
            temperature=1.5,
            hard_label_weight=0.3,
            teacher_weights=[0.2, 1.0, 3.0],
            ensemble=ensemble,
        )

    assert torch.autograd.gradcheck(loss, (s.clone().requires_grad_(),))


def test_weighted_average_probs_and_reductions(logits):
    s, t = logits
    w = torch.tensor([0.0, 1.0, 3.0])
    per_clip = distillation_loss(
        s,
        t,
        teacher_weights=w.tolist(),
        ensemble="average_probs",
        reduction="none",
    )
    p = (w[:, None, None] * torch.softmax(t / 2.0, -1)).sum(0) / 4.0
    q = torch.softmax(s / 2.0, -1)
    expected = 4.0 * (p * (p.log() - q.log())).sum(-1)
    assert per_clip.shape == (5,)
    assert torch.allclose(per_clip, expected, atol=1e-5)
    total = distillation_loss(
        s,
        t,
        teacher_weights=w.tolist(),
        ensemble="average_probs",
        reduction="sum",
    )
    assert torch.allclose(total, expected.sum(), atol=1e-5)


def test_confident_teachers_stay_finite():
    s = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[[1e4, -1e4, 0.0]], [[-1e4, 1e4, 0.0]]])
    for ensemble in ("per_teacher", "average_probs"):
        loss = distillation_loss(s, t, ensemble=ensemble)
        (grad,) = torch.autograd.grad(loss, s)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    # p = (1/2, 1/2, 0) against a uniform q: KL = log(1.5).
    avg = distillation_loss(s, t, ensemble="average_probs", t2_scaling=False)
    assert float(avg.detach()) == pytest.approx(
        torch.log(torch.tensor(1.5)).item()
    )


def test_single_teacher_may_be_given_without_k(logits):
    s, t = logits
    assert torch.equal(distillation_loss(s, t[0]), distillation_loss(s, t[:1]))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"hard_label_weight": 1.5}, "hard_label_weight"),
        ({"hard_label_weight": -0.1}, "hard_label_weight"),
        ({"teacher_reduction": "max"}, "teacher_reduction"),
        ({"ensemble": "vote"}, "ensemble"),
        ({"reduction": "batchmean"}, "reduction must be"),
        ({"teacher_weights": [1.0, 2.0]}, "2 teacher_weights"),
        ({"teacher_weights": [1.0, -1.0, 1.0]}, "teacher_weights must be"),
        ({"teacher_weights": [0.0, 0.0, 0.0]}, "positive sum"),
    ],
)
def test_bad_options_are_named(logits, options, message):
    s, t = logits
    with pytest.raises(ValueError, match=message):
        distillation_loss(s, t, torch.zeros(5, dtype=torch.long), **options)


def test_mismatched_logits_are_named(logits):
    s, t = logits
    with pytest.raises(ValueError, match="do not match student"):
        distillation_loss(s, t[:, :, :3])
    with pytest.raises(ValueError, match=r"\[batch, classes\]"):
        distillation_loss(s[0], t[:, 0])


def test_hard_labels_need_targets(logits):
    s, t = logits
    with pytest.raises(ValueError, match="targets"):
        distillation_loss(s, t, hard_label_weight=0.5)


def test_yaml_module_checks_options_when_built(logits):
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=-1)
    with pytest.raises(TypeError):
        DistillationLoss(temprature=2.0)
    s, t = logits
    module = DistillationLoss(teacher_weights=[1, 2, 3], t2_scaling=False)
    assert module.config["teacher_weights"] == [1.0, 2.0, 3.0]
    assert torch.equal(
        module(s, t),
        distillation_loss(s, t, teacher_weights=[1, 2, 3], t2_scaling=False),
    )


def test_center_gradient_is_the_unweighted_one():
    loss_fn = CenterLoss(3, 2, weight=1e-4)
    emb = torch.randn(6, 2, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn(emb, y).backward()
    unweighted = 0.5 * (emb.detach() - loss_fn.centers[y]).pow(2).sum(-1).mean()
    (expected,) = torch.autograd.grad(unweighted, loss_fn.centers)
    assert torch.allclose(loss_fn.centers.grad, expected, atol=1e-6)
    # The embeddings see the weighted gradient.
    assert torch.allclose(
        emb.grad, 1e-4 * (emb.detach() - loss_fn.centers.detach()[y]) / 6
    )


def test_centers_move_to_class_means_at_their_own_rate():
    loss_fn = CenterLoss(2, 2, weight=5e-5)
    emb = torch.tensor([[1.0, 1.0], [3.0, 1.0], [-2.0, 0.0], [-4.0, 2.0]])
    y = torch.tensor([0, 0, 1, 1])
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        loss_fn(emb, y).backward()
        opt.step()
    means = torch.tensor([[2.0, 1.0], [-3.0, 1.0]])
    assert torch.allclose(loss_fn.centers.detach(), means, atol=1e-3)


def test_mixup_mixes_pairs_with_lambda():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(4.0)[:, None].repeat(1, 3)
    y = torch.arange(4)
    mixed, y_b, lam = mixup(x, y, alpha=0.4, generator=gen)
    assert torch.allclose(mixed[:, 0], lam * x[:, 0] + (1 - lam) * y_b.float())


def test_center_loss_value_and_bad_targets():
    loss_fn = CenterLoss(2, 2, weight=0.5)
    with torch.no_grad():
        loss_fn.centers.zero_()
    emb = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    # weight 0.5 * 0.5 * mean(25, 4) = 0.25 * 14.5
    value = loss_fn(emb, torch.tensor([0, 1])).detach()
    assert float(value) == pytest.approx(3.625)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 2\)"):
        loss_fn(emb, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"\[batch, 2\]"):
        loss_fn(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="weight must be > 0"):
        CenterLoss(2, 2, weight=0.0)


def test_mixup_is_reproducible_and_takes_one_hot_targets():
    x = torch.randn(6, 5)
    y = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float()
    a = mixup(x, y, 0.4, generator=torch.Generator().manual_seed(3))
    b = mixup(x, y, 0.4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError, match="6 inputs but 5 targets"):
        mixup(x, y[:5], 0.4)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        mixup(x, y, 0.0)


def test_mixup_lambda_follows_its_beta_distribution():
    # alpha = 0.1 (the paper's) puts most draws near 0 or 1.
    gen = torch.Generator().manual_seed(0)
    x, y = torch.zeros(2, 1), torch.arange(2)
    lams = torch.tensor(
        [mixup(x, y, 0.1, generator=gen)[2] for _ in range(400)]
    )
    assert 0.4 < lams.mean() < 0.6
    assert ((lams < 0.05) | (lams > 0.95)).float().mean() > 0.6


def test_center_loss_defaults_and_config():
    from speechbrain_kd.losses import CenterLoss

    loss = CenterLoss(3, 4)
    assert loss.weight == 5e-5  # Jung et al.'s weight
    assert loss.config == {"n_classes": 3, "embedding_dim": 4, "weight": 5e-5}
    with pytest.raises(ValueError) as error:
        CenterLoss(3, 4, weight=0)
    assert str(error.value) == (
        "center loss weight must be > 0, got 0 (leave the center loss out "
        "to disable it)"
    )


def test_mixup_without_generator_follows_torch_seed():
    from speechbrain_kd.losses import mixup

    inputs, targets = torch.randn(6, 5), torch.arange(6)
    torch.manual_seed(2)
    mixed, targets_b, lam = mixup(inputs, targets, alpha=0.4)
    torch.manual_seed(2)
    again = mixup(inputs, targets, alpha=0.4)
    assert torch.equal(mixed, again[0]) and lam == again[2]
    assert 0 < lam < 1
    # targets are 0..5, so targets_b is the permutation itself.
    assert torch.allclose(mixed, lam * inputs + (1 - lam) * inputs[targets_b])
    lams = set()
    for seed in range(20):
        torch.manual_seed(seed)
        lams.add(round(mixup(inputs, targets, alpha=0.4)[2], 6))
    assert len(lams) == 20  # drawn, not fixed


def test_kd_option_edges_and_messages():
    from speechbrain_kd.losses import DistillationLoss

    student, teachers = torch.randn(4, 3), torch.randn(2, 4, 3)
    targets = torch.tensor([0, 1, 2, 0])
    DistillationLoss(temperature=0.5)(student, teachers)  # below 1 is fine
    only_ce = DistillationLoss(hard_label_weight=1.0)(
        student, teachers, targets
    )
    assert torch.allclose(
        only_ce, torch.nn.functional.cross_entropy(student, targets)
    )
    DistillationLoss(teacher_weights=[0.5, 0.25])  # a sum below 1 is fine
    DistillationLoss(teacher_weights=[2.0])
    cases = {
        "teacher_reduction": (
            {"teacher_reduction": "max"},
            "teacher_reduction must be one of sum, mean; got 'max'",
        ),
        "reduction": (
            {"reduction": "avg"},
            "reduction must be one of mean, sum, none; got 'avg'",
        ),
        "empty": (
            {"teacher_weights": []},
            "teacher_weights must be a list of numbers, got []",
        ),
        "text": (
            {"teacher_weights": ["a", "b"]},
            "teacher_weights must be a list of numbers, got ['a', 'b']",
        ),
        "nested": (
            {"teacher_weights": [[1.0, 2.0]]},
            "teacher_weights must be a list of numbers, got [[1.0, 2.0]]",
        ),
    }
    for options, text in cases.values():
        with pytest.raises(ValueError) as error:
            DistillationLoss(**options)
        assert str(error.value) == text
    with pytest.raises(ValueError) as error:
        DistillationLoss()(student, torch.randn(2, 4, 5))
    assert str(error.value) == (
        "teacher logits (2, 4, 5) do not match student logits (4, 3) "
        "(expected [K, B, C] and [B, C])"
    )
    with pytest.raises(ValueError) as error:
        DistillationLoss(teacher_weights=[1.0, 1.0, 1.0])(student, teachers)
    assert str(error.value) == "3 teacher_weights given for 2 teachers"


def test_kd_defaults_and_weights_reach_the_loss():
    from speechbrain_kd.losses import DistillationLoss, distillation_loss

    student, teachers = torch.randn(4, 3), torch.randn(2, 4, 3)
    default = DistillationLoss(temperature=2.0)(student, teachers)
    plain = DistillationLoss(temperature=2.0, t2_scaling=False)
    assert torch.allclose(default, 4 * plain(student, teachers))  # T^2
    first_only = DistillationLoss(teacher_weights=[1.0, 0.0])
    assert torch.allclose(
        first_only(student, teachers),
        distillation_loss(student, teachers[:1]),
    )
    ints = distillation_loss(student, teachers, teacher_weights=[1, 3])
    floats = distillation_loss(student, teachers, teacher_weights=[1.0, 3.0])
    assert torch.allclose(ints, floats)


def test_per_clip_loss_keeps_the_hard_label_term_per_clip():
    from speechbrain_kd.losses import distillation_loss

    student, teachers = torch.randn(4, 3), torch.randn(1, 4, 3)
    targets = torch.tensor([0, 1, 2, 0])
    per_clip = distillation_loss(
        student, teachers, targets, hard_label_weight=0.5, reduction="none"
    )
    kd = distillation_loss(student, teachers, reduction="none")
    ce = torch.nn.functional.cross_entropy(student, targets, reduction="none")
    assert per_clip.shape == (4,)
    assert torch.allclose(per_clip, 0.5 * ce + 0.5 * kd)


def test_half_precision_logits_are_computed_in_float32():
    from speechbrain_kd.losses import distillation_loss

    student = torch.randn(4, 3).to(torch.bfloat16)
    teachers = torch.randn(2, 4, 3).to(torch.bfloat16)
    loss = distillation_loss(student, teachers, teacher_weights=[1.0, 2.0])
    assert loss.dtype == torch.float32
    exact = distillation_loss(
        student.float(), teachers.float(), teacher_weights=[1.0, 2.0]
    )
    assert torch.allclose(loss, exact, atol=1e-6)
    double = distillation_loss(student.double(), teachers.float())
    assert double.dtype == torch.float64


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_mixed_teacher_logits_soften_to_the_mixed_posteriors(lam):
    teachers = 4 * torch.randn(
        3, 6, 5, generator=torch.Generator().manual_seed(1)
    )
    partners = torch.tensor([3, 0, 5, 1, 2, 4])
    for temperature in (1.0, 2.0):
        mixed = mix_teacher_logits(teachers, partners, lam, temperature)
        assert mixed.shape == teachers.shape and torch.isfinite(mixed).all()
        own = (teachers / temperature).softmax(-1)
        other = (teachers[:, partners] / temperature).softmax(-1)
        got = (mixed / temperature).softmax(-1)
        # Each teacher's own posteriors are mixed, not the ensemble's.
        assert torch.allclose(got, lam * own + (1 - lam) * other, atol=1e-6)
    # One teacher as [B, C].
    single = mix_teacher_logits(teachers[0], partners, lam, 2.0)
    assert torch.allclose(
        single, mix_teacher_logits(teachers, partners, lam, 2.0)[0]
    )
