"""Time pooling: shapes, padding masks, uniform start, trainable queries."""

import pytest
import torch

from speechbrain_kd.models.pooling import (
    GlobalAvgMaxPooling,
    SelfMultiHeadAttentionPooling,
    make_pooling,
)


def with_garbage(x, extra, value=None):
    """Append ``extra`` frames of garbage; return batch and rel. lengths."""
    gen = torch.Generator().manual_seed(1)
    tail = 100 * torch.randn(x.shape[0], extra, x.shape[2], generator=gen)
    if value is not None:
        tail.fill_(value)
    padded = torch.cat([x, tail], dim=1)
    lengths = torch.full((x.shape[0],), x.shape[1] / padded.shape[1])
    return padded, lengths


def trained_attention(size=8, heads=4, with_max=True):
    pool = SelfMultiHeadAttentionPooling(size, heads, with_max)
    with torch.no_grad():
        pool.queries.normal_(generator=torch.Generator().manual_seed(0))
    return pool


@pytest.mark.parametrize(
    "pool,size",
    [
        (GlobalAvgMaxPooling(8), 16),
        (SelfMultiHeadAttentionPooling(8, 4), 16),
        (SelfMultiHeadAttentionPooling(8, 2, with_max=False), 8),
    ],
)
def test_output_shape_matches_output_size(pool, size):
    out = pool(torch.randn(3, 7, 8), torch.tensor([1.0, 0.5, 0.2]))
    assert out.shape == (3, size) == (3, pool.output_size)


@pytest.mark.parametrize("value", [None, float("inf"), float("nan")])
@pytest.mark.parametrize(
    "make",
    [lambda: GlobalAvgMaxPooling(8), trained_attention],
)
def test_padding_frames_do_not_count(make, value):
    pool = make()
    x = torch.randn(2, 6, 8)
    padded, lengths = with_garbage(x, 5, value)
    out = pool(padded, lengths)
    assert torch.isfinite(out).all()
    assert torch.allclose(pool(x), out, atol=1e-5)


def test_clips_of_different_lengths_pool_like_alone():
    pool = trained_attention()
    short, long = torch.randn(1, 3, 8), torch.randn(1, 9, 8)
    batch = torch.cat([torch.cat([short, torch.randn(1, 6, 8)], 1), long])
    out = pool(batch, torch.tensor([3 / 9, 1.0]))
    assert torch.allclose(out[0], pool(short)[0], atol=1e-5)
    assert torch.allclose(out[1], pool(long)[0], atol=1e-5)


def test_attention_weights_sum_to_one_and_skip_padding():
    pool = trained_attention()
    padded, lengths = with_garbage(torch.randn(2, 6, 8), 4)
    weights = pool.attention(padded, lengths)
    assert weights.shape == (2, 10, 4)
    assert torch.allclose(weights.sum(1), torch.ones(2, 4))
    assert weights[:, 6:].abs().max() == 0
    # Trained queries no longer give uniform weights.
    assert not torch.allclose(weights[:, :6], torch.full((2, 6, 4), 1 / 6))


def test_attention_follows_its_query():
    # Head 0 looks at channel 0: the frame with the largest value there
    # must get the largest weight once the query points at it.
    pool = SelfMultiHeadAttentionPooling(2, num_heads=2, with_max=False)
    with torch.no_grad():
        pool.queries.fill_(10.0)
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    weights = pool.attention(x)[0]
    assert weights[:, 0].argmax() == 1 and weights[:, 1].argmax() == 2
    expected = (weights.T[:, :, None] * x[0]).sum(1).diagonal()
    assert torch.allclose(pool(x)[0], expected)


def test_zero_queries_start_as_average_pooling():
    pool = SelfMultiHeadAttentionPooling(8, 4)
    x = torch.randn(3, 5, 8)
    lengths = torch.tensor([1.0, 0.6, 0.4])
    assert torch.count_nonzero(pool.queries) == 0
    assert torch.allclose(
        pool(x, lengths), GlobalAvgMaxPooling(8)(x, lengths), atol=1e-6
    )
    no_max = SelfMultiHeadAttentionPooling(8, 4, with_max=False)
    assert torch.allclose(no_max(x), x.mean(1), atol=1e-6)


def test_gradients_reach_the_queries():
    pool = SelfMultiHeadAttentionPooling(8, 4)
    x = torch.randn(2, 6, 8)
    pool(x, torch.tensor([1.0, 0.5])).pow(2).sum().backward()
    assert pool.queries.grad is not None
    assert (pool.queries.grad.abs().sum(-1) > 0).all()  # every head


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="attention_heads=3 must divide"):
        SelfMultiHeadAttentionPooling(8, num_heads=3)
    with pytest.raises(ValueError, match="attention_heads=0"):
        make_pooling("attention", 8, 0)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="pooling must be one of"):
        make_pooling("stats", 8)
    with pytest.raises(ValueError, match=r"\[batch, time, 8\]"):
        GlobalAvgMaxPooling(8)(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="do not match a batch of 2"):
        GlobalAvgMaxPooling(8)(torch.randn(2, 5, 8), torch.ones(3))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        GlobalAvgMaxPooling(8)(torch.randn(2, 5, 8), torch.tensor([1, 2.0]))
