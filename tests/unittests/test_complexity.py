"""Model size and cost: the published CNN's figures, MACs that follow the
input, the model left as it was."""

import pytest
import torch

from speechbrain_kd.complexity import model_complexity
from speechbrain_kd.models import build_family, family_module


def family(name, sample_rate, **options):
    modules = build_family(
        name=name,
        options=options,
        in_channels=2,
        n_classes=10,
        sample_rate=sample_rate,
        embedding_dim=128,
        pooling="avgmax",
        attention_heads=4,
    )
    return [
        family_module(modules, k) for k in ("embedding_model", "classifier")
    ]


def test_published_raw_waveform_cnn_has_636736_parameters():
    """Jung et al. 2020: the baseline's 636,736 parameters at 48 kHz."""
    report = model_complexity(*family("raw_waveform_cnn", 48000), 48000)
    assert report["parameters"] == 636_736
    assert report["parameter_bytes"] == {
        "fp32": 4 * 636_736,
        "fp16": 2 * 636_736,
        "int8": 636_736,
    }


@pytest.mark.parametrize("name", ["raw_waveform_cnn", "logmel_cnn"])
def test_macs_grow_with_the_clip_and_count_the_convolutions(name):
    embed, head = family(name, 16000)
    one = model_complexity(embed, head, 16000, seconds=1.0)["macs"]
    two = model_complexity(embed, head, 16000, seconds=2.0)["macs"]
    assert 1.8 < two / one < 2.2
    # The first convolution alone, counted by hand, is a lower bound.
    first = next(
        m
        for m in embed.modules()
        if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)
    )
    assert one > first.weight.numel()


def test_the_model_is_left_in_its_mode_and_unchanged():
    embed, head = family("logmel_cnn", 16000, dropout=0.5)
    embed.train()
    head.eval()
    before = {k: v.clone() for k, v in embed.state_dict().items()}
    model_complexity(embed, head, 16000)
    assert embed.training and not head.training
    after = embed.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats
