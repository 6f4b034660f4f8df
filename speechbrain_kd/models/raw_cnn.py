"""The raw-waveform CNN of Jung et al., IEEE Access 2020 (baseline/student).

Jee-weon Jung, Hee-Soo Heo, Hye-jin Shim, Ha-Jin Yu, "Knowledge Distillation
in Acoustic Scene Classification", IEEE Access 8:166870-166879, 2020.
"""

import torch

from speechbrain_kd.audio import batch_of_channels
from speechbrain_kd.models.pooling import make_pooling, valid_frames


def _time_mask(x, frames):
    """``[B, 1, T]`` mask of the first ``frames`` frames of ``[B, C, T]``."""
    steps = torch.arange(x.shape[-1], device=x.device)
    return (steps[None, :] < frames[:, None]).unsqueeze(1)


class ResidualBlock(torch.nn.Module):
    """Two kernel-3 convolutions with BatchNorm, a shortcut, max pooling.

    ``conv-BN-LeakyReLU-conv-BN``, plus the input (through a convolution
    of kernel ``shortcut_kernel`` when the channel count changes), then
    LeakyReLU and max pooling.

    Arguments
    ---------
    in_channels : int
    out_channels : int
    pool_size : int
        Max pooling after the block, in ``ceil_mode`` so that short inputs
        keep at least one frame.
    negative_slope : float
        LeakyReLU slope.
    shortcut_kernel : int
        Odd kernel size of the shortcut convolution (3 in the published
        script; 1 for a cheaper 1x1 projection).

    Example
    -------
    >>> ResidualBlock(8, 16, 3)(torch.randn(2, 8, 30)).shape
    torch.Size([2, 16, 10])
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        pool_size,
        negative_slope=0.3,
        shortcut_kernel=3,
    ):
        super().__init__()
        if shortcut_kernel < 1 or shortcut_kernel % 2 == 0:
            raise ValueError(
                f"shortcut_kernel must be a positive odd number, got "
                f"{shortcut_kernel}"
            )
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "pool_size": pool_size,
            "negative_slope": negative_slope,
            "shortcut_kernel": shortcut_kernel,
        }
        self.pool_size = pool_size
        self.conv1 = torch.nn.Conv1d(in_channels, out_channels, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm1d(out_channels)
        self.conv2 = torch.nn.Conv1d(out_channels, out_channels, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm1d(out_channels)
        self.act = torch.nn.LeakyReLU(negative_slope)
        self.shortcut = (
            torch.nn.Conv1d(
                in_channels,
                out_channels,
                shortcut_kernel,
                padding=shortcut_kernel // 2,
            )
            if in_channels != out_channels
            else torch.nn.Identity()
        )
        self.pool = torch.nn.MaxPool1d(pool_size, ceil_mode=True)

    def output_frames(self, frames):
        """Frames after the block's pooling for ``frames`` input frames.

        Arguments
        ---------
        frames : torch.Tensor
            int64 ``[B]``.

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> ResidualBlock(2, 2, 3).output_frames(torch.tensor([9, 10, 1]))
        tensor([3, 4, 1])
        """
        return -(-frames // self.pool_size)

    def forward(self, x, frames=None):
        """``[B, C_in, T]`` -> ``[B, C_out, ceil(T / pool_size)]``.

        With ``frames`` (valid frames per clip, ``[B]``; the input must be
        zero beyond them) padded frames are zeroed between the convolutions
        and excluded from the max pooling, so they never leak into valid
        frames and the output is zero beyond ``output_frames(frames)``.
        """
        mask = None if frames is None else _time_mask(x, frames)
        out = self.act(self.bn1(self.conv1(x)))
        if mask is not None:
            out = out.masked_fill(~mask, 0.0)
        out = self.act(self.bn2(self.conv2(out)) + self.shortcut(x))
        if mask is None:
            return self.pool(out)
        out = self.pool(out.masked_fill(~mask, float("-inf")))
        return out.masked_fill(~_time_mask(out, self.output_frames(frames)), 0)


class RawWaveformCNN(torch.nn.Module):
    """Raw-waveform CNN: strided first convolution, residual blocks, pooling.

    The published configuration of Jung et al., IEEE Access 2020 (the
    defaults; their script ``g_model_CNN_c.py``): a first Conv1d with
    kernel = stride = 12 (2 -> 128 channels), BatchNorm, LeakyReLU(0.3);
    seven :class:`ResidualBlock` with 64, 64, 128, 128, 128, 128, 128
    channels and MaxPool1d(3) (the two blocks that change the channel
    count have a kernel-3 shortcut convolution, as in the script); a 1x1
    convolution to 128 channels with BatchNorm and LeakyReLU; global
    average and max pooling concatenated (``pooling="avgmax"``) or self
    multi-head attention pooling for the specialists
    (``pooling="attention"``, same output size: baseline weights load into
    a specialist); a 128-unit linear embedding layer. With the bias-free
    10-way :class:`~speechbrain_kd.models.SceneClassifier` it has 636,736
    parameters ("about 0.64 M").

    **Padding.** SpeechBrain relative lengths are turned into sample counts
    and followed exactly through the strided convolution
    (``floor(n / stride)`` frames) and every pooling
    (``ceil(n / pool_size)``); padded frames are zeroed between stages and
    excluded from max pooling, so a clip gives the same embedding alone or
    padded (with anything) in a batch (in eval mode: in training, the
    BatchNorm batch statistics see the padded frames).

    **Short inputs.** Pooling runs in ``ceil_mode``, so any input of at
    least ``first_conv_kernel`` samples gives an embedding (an input
    shorter than the receptive field, ``first_conv_kernel *
    pool_size ** len(block_channels)`` samples = 0.55 s at 48 kHz for the
    published model, is simply pooled over fewer frames); a shorter input
    raises a ``ValueError``. The published script's last convolution has
    ``padding=3`` with a 1x1 kernel, which adds six constant frames to the
    pooled features; this implementation does not reproduce that quirk.

    Arguments
    ---------
    in_channels : int
        Channels the model takes; inputs with other counts are adapted
        (:func:`speechbrain_kd.audio.adapt_channels`).
    first_conv_channels : int
    first_conv_kernel : int
        Kernel and stride of the first convolution.
    block_channels : list of int
        Output channels of each residual block.
    pool_size : int
        Max pooling after every block.
    final_channels : int
        Channels of the 1x1 convolution before pooling.
    embedding_dim : int
    pooling : str
        ``"avgmax"`` or ``"attention"``.
    attention_heads : int
        Heads of the attention pooling; must divide ``final_channels``.
    negative_slope : float
        LeakyReLU slope.
    shortcut_kernel : int
        Kernel of the shortcut convolutions (3 as published, 1 for 1x1).

    Example
    -------
    >>> model = RawWaveformCNN(block_channels=[16, 16], final_channels=16,
    ...     first_conv_channels=16, embedding_dim=8)
    >>> model(torch.randn(3, 4800, 2), torch.tensor([1.0, 0.8, 0.5])).shape
    torch.Size([3, 8])
    >>> model(torch.randn(2, 4800)).shape  # mono input, repeated
    torch.Size([2, 8])
    """

    def __init__(
        self,
        in_channels=2,
        first_conv_channels=128,
        first_conv_kernel=12,
        block_channels=(64, 64, 128, 128, 128, 128, 128),
        pool_size=3,
        final_channels=128,
        embedding_dim=128,
        pooling="avgmax",
        attention_heads=4,
        negative_slope=0.3,
        shortcut_kernel=3,
    ):
        super().__init__()
        self.config = {
            "in_channels": in_channels,
            "first_conv_channels": first_conv_channels,
            "first_conv_kernel": first_conv_kernel,
            "block_channels": list(block_channels),
            "pool_size": pool_size,
            "final_channels": final_channels,
            "embedding_dim": embedding_dim,
            "pooling": pooling,
            "attention_heads": attention_heads,
            "negative_slope": negative_slope,
            "shortcut_kernel": shortcut_kernel,
        }
        self.in_channels = in_channels
        self.first_conv_kernel = first_conv_kernel
        self.first_conv = torch.nn.Sequential(
            torch.nn.Conv1d(
                in_channels,
                first_conv_channels,
                first_conv_kernel,
                stride=first_conv_kernel,
            ),
            torch.nn.BatchNorm1d(first_conv_channels),
            torch.nn.LeakyReLU(negative_slope),
        )
        blocks, channels = [], first_conv_channels
        for out_channels in block_channels:
            blocks.append(
                ResidualBlock(
                    channels,
                    out_channels,
                    pool_size,
                    negative_slope,
                    shortcut_kernel,
                )
            )
            channels = out_channels
        self.blocks = torch.nn.Sequential(*blocks)
        self.final_conv = torch.nn.Sequential(
            torch.nn.Conv1d(channels, final_channels, 1),
            torch.nn.BatchNorm1d(final_channels),
            torch.nn.LeakyReLU(negative_slope),
        )
        self.pooling = make_pooling(pooling, final_channels, attention_heads)
        self.embedding = torch.nn.Linear(
            self.pooling.output_size, embedding_dim
        )

    def forward(self, wavs, lengths=None):
        """Waveforms ``[B, T]`` or ``[B, T, C]`` -> embeddings ``[B, E]``.

        Arguments
        ---------
        wavs : torch.Tensor
            At the model's sample rate; ``[B, T]`` is mono.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]`` (SpeechBrain convention).

        Returns
        -------
        torch.Tensor
        """
        wavs = batch_of_channels(wavs, self.in_channels, "RawWaveformCNN")
        batch, time, _ = wavs.shape
        if time < self.first_conv_kernel:
            raise ValueError(
                f"input of {time} samples is shorter than the first "
                f"convolution ({self.first_conv_kernel} samples)"
            )
        x = self.first_conv(wavs.transpose(1, 2))
        if lengths is None:
            x = self.blocks(x)
            return self.embedding(self.pooling(self.final_conv(x).mT))
        samples = valid_frames(lengths, time, batch, wavs.device)
        # A clip with fewer samples than one frame keeps its first frame.
        frames = (samples // self.first_conv_kernel).clamp(min=1)
        x = x.masked_fill(~_time_mask(x, frames), 0.0)
        for block in self.blocks:
            x = block(x, frames)
            frames = block.output_frames(frames)
        x = self.final_conv(x)
        relative = frames.to(x.dtype) / x.shape[-1]
        return self.embedding(self.pooling(x.mT, relative))
