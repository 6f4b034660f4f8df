"""Time pooling layers that respect padding (SpeechBrain relative lengths).

Inputs are time-first, ``[batch, time, channels]``, as elsewhere in
SpeechBrain, with relative lengths ``[batch]`` (1.0 = the longest clip).
"""

import torch
from speechbrain.dataio.dataio import length_to_mask


def frame_mask(x, lengths):
    """Return a ``[batch, time, 1]`` mask of the valid frames of ``x``.

    Arguments
    ---------
    x : torch.Tensor
        ``[batch, time, channels]``.
    lengths : torch.Tensor or None
        Relative lengths ``[batch]``; None means every frame is valid.

    Returns
    -------
    torch.Tensor
        Boolean mask; every clip keeps at least one frame.

    Example
    -------
    >>> frame_mask(torch.zeros(2, 4, 3), torch.tensor([1.0, 0.5]))[..., 0]
    tensor([[ True,  True,  True,  True],
            [ True,  True, False, False]])
    """
    batch, time = x.shape[:2]
    if lengths is None:
        return torch.ones(batch, time, 1, dtype=torch.bool, device=x.device)
    frames = torch.clamp(torch.round(lengths * time), min=1)
    mask = length_to_mask(frames, max_len=time, device=x.device)
    return mask.bool().unsqueeze(-1)


class GlobalAvgMaxPooling(torch.nn.Module):
    """Global average and max pooling over time, concatenated.

    The baseline's pooling in Jung et al., IEEE Access 2020. Padded frames
    count in neither statistic.

    Arguments
    ---------
    input_size : int
        Channels of the input; the output has ``2 * input_size``.

    Example
    -------
    >>> pool = GlobalAvgMaxPooling(3)
    >>> x = torch.tensor([[[1.0, 2, 3], [3, 4, 5], [100, 100, 100]]])
    >>> pool(x, torch.tensor([2 / 3]))
    tensor([[2., 3., 4., 3., 4., 5.]])
    """

    def __init__(self, input_size):
        super().__init__()
        self.input_size = input_size
        self.output_size = 2 * input_size

    def forward(self, x, lengths=None):
        """Pool ``[B, T, C]`` to ``[B, 2C]``."""
        mask = frame_mask(x, lengths)
        count = mask.sum(dim=1).clamp(min=1)
        mean = (x * mask).sum(dim=1) / count
        peak = x.masked_fill(~mask, float("-inf")).amax(dim=1)
        return torch.cat([mean, peak], dim=-1)


class SelfMultiHeadAttentionPooling(torch.nn.Module):
    """Self multi-head attention pooling over time.

    India, Safari, Hernando, "Self multi-head attention for speaker
    recognition", Interspeech 2019: the channels are split into
    ``num_heads`` slices; head ``h`` scores every frame with a learned query
    ``u_h`` over its slice, ``w_t = softmax_t(u_h . x_t^h / sqrt(d))``
    (padded frames masked), and returns ``sum_t w_t x_t^h``; the heads are
    concatenated. Jung et al., IEEE Access 2020, add it to the specialists.

    The queries start at zero, so the initial attention is uniform and the
    layer starts as average pooling. With ``with_max=True`` (the default)
    the global max is concatenated as in :class:`GlobalAvgMaxPooling`, so
    the output keeps the baseline's size ``2 * input_size``: a specialist
    initialised from the baseline starts from exactly the baseline's
    function and learns where to attend.

    Arguments
    ---------
    input_size : int
        Channels of the input.
    num_heads : int
        Number of heads; must divide ``input_size``.
    with_max : bool
        Concatenate the global max (output ``2 * input_size``) or not
        (output ``input_size``).

    Example
    -------
    >>> pool = SelfMultiHeadAttentionPooling(8, num_heads=2)
    >>> x = torch.randn(3, 10, 8)
    >>> pool(x, torch.tensor([1.0, 0.5, 0.8])).shape
    torch.Size([3, 16])
    >>> avgmax = GlobalAvgMaxPooling(8)(x)
    >>> torch.allclose(pool(x), avgmax, atol=1e-6)  # uniform at start
    True
    """

    def __init__(self, input_size, num_heads=4, with_max=True):
        super().__init__()
        if num_heads < 1 or input_size % num_heads:
            raise ValueError(
                f"attention_heads={num_heads} must divide the "
                f"{input_size} channels of the pooled features"
            )
        self.input_size = input_size
        self.num_heads = num_heads
        self.head_size = input_size // num_heads
        self.with_max = with_max
        self.queries = torch.nn.Parameter(
            torch.zeros(num_heads, self.head_size)
        )
        self.output_size = input_size * (2 if with_max else 1)

    def attention(self, x, lengths=None):
        """Return the attention weights ``[B, T, heads]``."""
        batch, time, _ = x.shape
        heads = x.view(batch, time, self.num_heads, self.head_size)
        scores = (heads * self.queries).sum(-1) / self.head_size**0.5
        mask = frame_mask(x, lengths)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(self, x, lengths=None):
        """Pool ``[B, T, C]`` to ``[B, C]`` (``[B, 2C]`` with the max)."""
        batch, time, _ = x.shape
        weights = self.attention(x, lengths)
        heads = x.view(batch, time, self.num_heads, self.head_size)
        pooled = (weights.unsqueeze(-1) * heads).sum(dim=1)
        pooled = pooled.reshape(batch, self.input_size)
        if not self.with_max:
            return pooled
        mask = frame_mask(x, lengths)
        peak = x.masked_fill(~mask, float("-inf")).amax(dim=1)
        return torch.cat([pooled, peak], dim=-1)


def make_pooling(name, input_size, attention_heads=4):
    """Build a time pooling by name: ``"avgmax"`` or ``"attention"``.

    Arguments
    ---------
    name : str
    input_size : int
    attention_heads : int

    Returns
    -------
    torch.nn.Module
        With an ``output_size`` attribute.

    Example
    -------
    >>> make_pooling("attention", 8, 2).output_size
    16
    """
    if name == "avgmax":
        return GlobalAvgMaxPooling(input_size)
    if name == "attention":
        return SelfMultiHeadAttentionPooling(input_size, attention_heads)
    raise ValueError(f"pooling must be 'avgmax' or 'attention', not {name!r}")
