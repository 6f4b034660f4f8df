"""Model families: the published size, shapes, padding, specs, pooling."""

import pytest
import torch

from speechbrain_kd.models import (
    GlobalAvgMaxPooling,
    RawWaveformCNN,
    SceneClassifier,
    SelfMultiHeadAttentionPooling,
    build_module,
    module_spec,
)

SMALL_RAW = {
    "first_conv_channels": 16,
    "first_conv_kernel": 8,
    "block_channels": [16, 16, 16],
    "final_channels": 16,
    "embedding_dim": 8,
}


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_published_raw_cnn_size():
    # METHOD.md: "about 0.64 M parameters"; this layout gives 0.604 M.
    count = n_params(RawWaveformCNN(), SceneClassifier(128, 10))
    assert 0.58e6 <= count <= 0.66e6


@pytest.mark.parametrize("pooling", ["avgmax", "attention"])
def test_zero_padding_does_not_change_the_embedding(pooling):
    torch.manual_seed(0)
    model = RawWaveformCNN(pooling=pooling, **SMALL_RAW).eval()
    # 8 * 3**3 * 40 samples: every stage divides evenly.
    clip = torch.randn(1, 8640, 2)
    alone = model(clip, torch.tensor([1.0]))
    padded = torch.cat([clip, torch.zeros(1, 8640, 2)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 17280, 2)])
    together = model(batch, torch.tensor([0.5, 1.0]))
    assert torch.allclose(alone, together[:1], atol=1e-4)


def test_any_channel_count_is_adapted():
    model = RawWaveformCNN(**SMALL_RAW).eval()
    stereo = torch.randn(2, 4000, 2)
    mono = stereo[..., :1]
    assert model(mono).shape == model(stereo).shape == (2, 8)
    assert torch.allclose(model(mono[..., 0]), model(mono.repeat(1, 1, 2)))
    assert torch.allclose(
        model(torch.cat([stereo, stereo], -1)), model(stereo), atol=1e-6
    )


def test_spec_rebuilds_the_same_architecture():
    model = RawWaveformCNN(pooling="attention", **SMALL_RAW)
    rebuilt = build_module(module_spec(model))
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())


def test_spec_refuses_foreign_classes():
    with pytest.raises(ValueError, match="refusing"):
        build_module({"class": "subprocess.Popen", "config": {"args": "ls"}})


def test_baseline_weights_load_into_an_attention_specialist():
    baseline = RawWaveformCNN(**SMALL_RAW).eval()
    specialist = RawWaveformCNN(pooling="attention", **SMALL_RAW).eval()
    result = specialist.load_state_dict(baseline.state_dict(), strict=False)
    assert result.missing_keys == ["pooling.queries"]
    assert result.unexpected_keys == []
    x = torch.randn(2, 8000, 2)
    # Zero queries: attention is uniform, the specialist starts as the
    # baseline.
    assert torch.allclose(specialist(x), baseline(x), atol=1e-5)


def test_attention_masks_padding_and_trains_queries():
    pool = SelfMultiHeadAttentionPooling(8, num_heads=4)
    x = torch.randn(2, 6, 8)
    garbage = torch.cat([x, 100 * torch.randn(2, 4, 8)], dim=1)
    with torch.no_grad():
        pool.queries.normal_()
    assert torch.allclose(
        pool(x), pool(garbage, torch.tensor([0.6, 0.6])), atol=1e-5
    )
    pool(x).pow(2).sum().backward()
    assert pool.queries.grad.abs().sum() > 0
    weights = pool.attention(garbage, torch.tensor([0.6, 0.6]))
    assert torch.allclose(weights.sum(1), torch.ones(2, 4))
    assert weights[:, 6:].abs().max() == 0


def test_attention_heads_must_divide_channels():
    with pytest.raises(ValueError, match="attention_heads=3"):
        SelfMultiHeadAttentionPooling(8, num_heads=3)


def test_avgmax_ignores_padding():
    pool = GlobalAvgMaxPooling(2)
    x = torch.tensor([[[1.0, -1.0], [3.0, -3.0], [50.0, 50.0]]])
    assert torch.equal(
        pool(x, torch.tensor([2 / 3])), torch.tensor([[2.0, -2.0, 3.0, -1.0]])
    )


def test_too_short_input_is_refused():
    with pytest.raises(ValueError, match="shorter than the first"):
        RawWaveformCNN(**SMALL_RAW)(torch.randn(1, 4, 2))
