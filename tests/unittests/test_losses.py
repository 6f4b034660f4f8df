"""KD and center losses: each formula against a hand computation."""

import pytest
import torch

from speechbrain_kd.losses import (
    CenterLoss,
    DistillationLoss,
    distillation_loss,
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


@pytest.mark.parametrize(
    "options,message",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"hard_label_weight": 1.5}, "hard_label_weight"),
        ({"teacher_reduction": "max"}, "teacher_reduction"),
        ({"ensemble": "vote"}, "ensemble"),
        ({"teacher_weights": [1.0, 2.0]}, "2 teacher weights"),
    ],
)
def test_bad_options_are_named(logits, options, message):
    s, t = logits
    with pytest.raises(ValueError, match=message):
        distillation_loss(s, t, torch.zeros(5, dtype=torch.long), **options)


def test_hard_labels_need_targets(logits):
    s, t = logits
    with pytest.raises(ValueError, match="targets"):
        distillation_loss(s, t, hard_label_weight=0.5)


def test_yaml_module_checks_options_when_built():
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=-1)
    DistillationLoss(teacher_weights=[1.0, 2.0, 3.0])


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
