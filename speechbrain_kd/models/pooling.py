"""Time pooling layers that respect padding (SpeechBrain relative lengths).

Inputs are time-first, ``[batch, time, channels]``, as elsewhere in
SpeechBrain, with relative lengths ``[batch]`` (1.0 = the longest clip).
Padded frames never count: a clip pooled alone and the same clip padded
with anything in a batch give the same result.
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
    frames = valid_frames(lengths, time, batch, x.device).clamp(min=1)
    mask = length_to_mask(frames, max_len=time, device=x.device)
    return mask.bool().unsqueeze(-1)


def valid_frames(lengths, time, batch, device=None):
    """Turn relative lengths into numbers of valid frames ``[batch]``.

    Arguments
    ---------
    lengths : torch.Tensor or None
        Relative lengths ``[batch]`` (SpeechBrain convention); None means
        every frame is valid.
    time : int
        Frames (or samples) of the padded batch.
    batch : int
    device : torch.device, optional

    Returns
    -------
    torch.Tensor
        int64 counts in ``[0, time]``.

    Example
    -------
    >>> valid_frames(torch.tensor([1.0, 0.25]), 8, 2)
    tensor([8, 2])
    """
    if lengths is None:
        return torch.full((batch,), time, dtype=torch.long, device=device)
    if lengths.shape != (batch,):
        raise ValueError(
            f"relative lengths of shape {tuple(lengths.shape)} do not match "
            f"a batch of {batch}"
        )
    if ((lengths < 0) | (lengths > 1 + 1e-6)).any():
        raise ValueError(
            f"relative lengths must lie in [0, 1], got {lengths.tolist()}"
        )
    frames = torch.round(lengths.double() * time).long()
    return frames.clamp(0, time).to(device)


def _check_input(x, input_size, name):
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ValueError(
            f"{name} expects [batch, time, {input_size}], got {tuple(x.shape)}"
        )


def _masked_max(x, mask):
    return x.masked_fill(~mask, float("-inf")).amax(dim=1)


class GlobalAvgMaxPooling(torch.nn.Module):
    """Global average and max pooling over time, concatenated.

    The baseline's pooling in Jung et al., "Knowledge Distillation in
    Acoustic Scene Classification", IEEE Access 2020. Padded frames count
    in neither statistic.

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
        self.config = {"input_size": input_size}
        self.input_size = input_size
        self.output_size = 2 * input_size

    def forward(self, x, lengths=None):
        """Pool ``[B, T, C]`` (relative lengths ``[B]``) to ``[B, 2C]``."""
        _check_input(x, self.input_size, type(self).__name__)
        mask = frame_mask(x, lengths)
        count = mask.sum(dim=1).clamp(min=1)
        mean = x.masked_fill(~mask, 0.0).sum(dim=1) / count
        return torch.cat([mean, _masked_max(x, mask)], dim=-1)


class SelfMultiHeadAttentionPooling(torch.nn.Module):
    """Self multi-head attention pooling over time.

    India, Safari, Hernando, "Self multi-head attention for speaker
    recognition", Interspeech 2019. The channels are split into
    ``num_heads`` slices ``x_t^h`` of ``d = input_size / num_heads``
    channels; head ``h`` has a learned query ``u_h`` and computes
    ``w_t^h = softmax_t(u_h . x_t^h / sqrt(d))`` over the valid frames
    (padded frames get zero weight) and ``sum_t w_t^h x_t^h``; the heads
    are concatenated (``input_size`` values). Jung et al., IEEE Access
    2020, put it in the specialists so that they attend to the frames that
    tell their target pair apart.

    **Initialisation.** The queries start at zero, so every frame gets the
    same weight and the layer starts as average pooling.

    **Output size.** With ``with_max=True`` (the default, used by the
    models) the masked global max is concatenated after the heads, as in
    :class:`GlobalAvgMaxPooling`: the output keeps the baseline's size
    ``2 * input_size``, so the embedding layer has the same shape, every
    baseline weight loads unchanged into a specialist (only the queries
    are new), and the specialist starts from exactly the baseline's
    function and learns where to attend. With ``with_max=False`` the output
    is the ``input_size`` attention-pooled values alone.

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
        self.config = {
            "input_size": input_size,
            "num_heads": num_heads,
            "with_max": with_max,
        }
        self.input_size = input_size
        self.num_heads = num_heads
        self.head_size = input_size // num_heads
        self.with_max = with_max
        # Zero queries: uniform attention, i.e. average pooling at start.
        self.queries = torch.nn.Parameter(
            torch.zeros(num_heads, self.head_size)
        )
        self.output_size = input_size * (2 if with_max else 1)

    def attention(self, x, lengths=None):
        """Return the attention weights ``[B, T, heads]`` (sum 1 over T).

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, input_size]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> pool = SelfMultiHeadAttentionPooling(4, num_heads=2)
        >>> x = torch.randn(1, 4, 4)
        >>> pool.attention(x, torch.tensor([0.5]))[0].detach()
        tensor([[0.5000, 0.5000],
                [0.5000, 0.5000],
                [0.0000, 0.0000],
                [0.0000, 0.0000]])
        """
        _check_input(x, self.input_size, type(self).__name__)
        batch, time, _ = x.shape
        heads = x.reshape(batch, time, self.num_heads, self.head_size)
        scores = (heads * self.queries).sum(-1) / self.head_size**0.5
        # Padding may hold anything (inf, nan): keep it out of the scores.
        mask = frame_mask(x, lengths)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(self, x, lengths=None):
        """Pool ``[B, T, C]`` to ``[B, 2C]`` (``[B, C]`` without the max)."""
        batch, time, _ = x.shape
        weights = self.attention(x, lengths)
        mask = frame_mask(x, lengths)
        values = x.masked_fill(~mask, 0.0)
        heads = values.reshape(batch, time, self.num_heads, self.head_size)
        pooled = (weights.unsqueeze(-1) * heads).sum(dim=1)
        pooled = pooled.reshape(batch, self.input_size)
        if not self.with_max:
            return pooled
        return torch.cat([pooled, _masked_max(x, mask)], dim=-1)


POOLINGS = ("avgmax", "attention")


def make_pooling(name, input_size, attention_heads=4):
    """Build a time pooling by name: ``"avgmax"`` or ``"attention"``.

    Both give ``2 * input_size`` values (see
    :class:`SelfMultiHeadAttentionPooling`), so a model's other layers do
    not depend on the choice.

    Arguments
    ---------
    name : str
    input_size : int
    attention_heads : int
        Heads of the attention pooling (ignored by ``"avgmax"``).

    Returns
    -------
    torch.nn.Module
        With an ``output_size`` attribute.

    Example
    -------
    >>> make_pooling("attention", 8, 2).output_size
    16
    >>> make_pooling("mean", 8)
    Traceback (most recent call last):
    ...
    ValueError: pooling must be one of avgmax, attention; got 'mean'
    """
    if name == "avgmax":
        return GlobalAvgMaxPooling(input_size)
    if name == "attention":
        return SelfMultiHeadAttentionPooling(input_size, attention_heads)
    raise ValueError(
        f"pooling must be one of {', '.join(POOLINGS)}; got {name!r}"
    )
