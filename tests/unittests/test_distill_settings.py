"""The student's loss as the distillation phase builds it from its settings:
the weighted hard-label term of the paper's figure is a setting, off in the
published configuration and on in the demo preset."""

import argparse

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_kd.losses import distillation_loss
from tests.conftest import RECIPE

PHASE_YAML = RECIPE / "hparams" / "distill.yaml"


def student_loss(tmp_path, **overrides):
    """The ``kd_loss`` that ``distill.yaml`` builds with ``overrides``."""
    settings = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "student"),
        "teacher_folders": [],
        "init_from": None,
        "n_classes": 4,
        **overrides,
    }
    with open(PHASE_YAML, encoding="utf-8") as f:
        return load_hyperpyyaml(f, settings)["kd_loss"]


def preset_settings(name, tmp_path):
    """What ``pipeline.py --preset=<name>`` passes to the distill phase."""
    from pipeline import Pipeline

    args = argparse.Namespace(
        output_folder=str(tmp_path / "pipeline"),
        data_folder=str(tmp_path),
        preset=name,
        student_model=None,
        student_model_options=None,
    )
    return Pipeline(args, {}, []).phase_overrides("distill.yaml", "distill")


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_hard_label_weight_reaches_the_students_loss(tmp_path, weight):
    kd_loss = student_loss(tmp_path, hard_label_weight=weight)
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(5, 4, generator=generator)
    teachers = torch.randn(3, 5, 4, generator=generator)
    targets = torch.tensor([0, 1, 2, 3, 0])
    published_kl = distillation_loss(
        student, teachers, temperature=2.0, t2_scaling=False
    )
    cross_entropy = torch.nn.functional.cross_entropy(student, targets)
    expected = weight * cross_entropy + (1 - weight) * published_kl
    assert torch.allclose(kd_loss(student, teachers, targets), expected)


def test_paper_preset_keeps_the_published_loss(tmp_path):
    kd_loss = student_loss(tmp_path, **preset_settings("paper", tmp_path))
    assert kd_loss.config["hard_label_weight"] == 0.0
    assert kd_loss.config["t2_scaling"] is False
    assert kd_loss.config["teacher_reduction"] == "sum"


def test_demo_preset_gives_the_student_the_true_labels_too(tmp_path):
    kd_loss = student_loss(tmp_path, **preset_settings("demo", tmp_path))
    assert 0.0 < kd_loss.config["hard_label_weight"] < 1.0
