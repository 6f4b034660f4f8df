"""Audio loading and data pipelines shared by every phase and recipe."""

import torch


def adapt_channels(wav, channels):
    """Return ``wav`` with exactly ``channels`` channels.

    Models and data pipelines call this so that any recording can be fed to
    any model: a mono signal is repeated on every channel, a model with one
    channel gets the average of all channels, and a recording with more
    channels than the model takes keeps its first ``channels`` ones (the
    binaural pair of a multi-microphone recording).

    Arguments
    ---------
    wav : torch.Tensor
        ``[time]``, ``[time, ch]`` or ``[batch, time, ch]``. A 2-D input is
        read as ``[time, ch]``: unsqueeze a mono batch ``[batch, time]`` to
        ``[batch, time, 1]`` first.
    channels : int
        The number of channels wanted.

    Returns
    -------
    torch.Tensor
        ``[..., time, channels]`` (a channel axis is always present).

    Example
    -------
    >>> adapt_channels(torch.zeros(100), 2).shape
    torch.Size([100, 2])
    >>> adapt_channels(torch.ones(4, 100, 2), 1).shape
    torch.Size([4, 100, 1])
    >>> adapt_channels(torch.zeros(100, 4), 2).shape
    torch.Size([100, 2])
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    if wav.dim() == 1:
        wav = wav.unsqueeze(-1)
    have = wav.shape[-1]
    if have == channels:
        return wav
    if have == 1:
        return wav.expand(*wav.shape[:-1], channels).contiguous()
    if channels == 1:
        return wav.mean(dim=-1, keepdim=True)
    if have > channels:
        return wav[..., :channels].contiguous()
    raise ValueError(
        f"cannot turn a {have}-channel signal into {channels} channels"
    )
