"""The raw-waveform CNN of Jung et al., IEEE Access 2020 (baseline/student).

Jee-weon Jung, Hee-Soo Heo, Hye-jin Shim, Ha-Jin Yu, "Knowledge Distillation
in Acoustic Scene Classification", IEEE Access 8:166870-166879, 2020.
"""

import torch

from speechbrain_kd.dataio import adapt_channels
from speechbrain_kd.models.pooling import frame_mask, make_pooling


class ResidualBlock(torch.nn.Module):
    """Two kernel-3 convolutions with BatchNorm, a shortcut, max pooling.

    Arguments
    ---------
    in_channels : int
    out_channels : int
    pool_size : int
        Max pooling after the block (``ceil_mode``: short inputs keep at
        least one frame).
    negative_slope : float
        LeakyReLU slope.

    Example
    -------
    >>> ResidualBlock(8, 16, 3)(torch.randn(2, 8, 30)).shape
    torch.Size([2, 16, 10])
    """

    def __init__(
        self, in_channels, out_channels, pool_size, negative_slope=0.3
    ):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(in_channels, out_channels, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm1d(out_channels)
        self.conv2 = torch.nn.Conv1d(out_channels, out_channels, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm1d(out_channels)
        self.act = torch.nn.LeakyReLU(negative_slope)
        self.shortcut = (
            torch.nn.Conv1d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else torch.nn.Identity()
        )
        self.pool = torch.nn.MaxPool1d(pool_size, ceil_mode=True)

    def forward(self, x, mask=None):
        """``[B, C_in, T]`` -> ``[B, C_out, ceil(T / pool_size)]``.

        ``mask`` (``[B, 1, T]``) zeroes padded frames between the two
        convolutions, so padding never leaks into valid frames.
        """
        out = self.act(self.bn1(self.conv1(x)))
        if mask is not None:
            out = out * mask
        out = self.bn2(self.conv2(out))
        return self.pool(self.act(out + self.shortcut(x)))


class RawWaveformCNN(torch.nn.Module):
    """Raw-waveform CNN: strided first convolution, residual blocks, pooling.

    The published configuration (the defaults): a first Conv1d with
    kernel = stride = 12 (2 -> 128 channels), BatchNorm, LeakyReLU(0.3);
    seven residual blocks with 64, 64, 128, 128, 128, 128, 128 channels and
    MaxPool1d(3); a 1x1 convolution to 128 channels; global average and max
    pooling concatenated (or self multi-head attention pooling for the
    specialists); a 128-unit embedding layer. With the bias-free 10-way
    :class:`~speechbrain_kd.models.SceneClassifier` it has about 0.6 M
    parameters.

    Arguments
    ---------
    in_channels : int
        Channels the model takes; inputs with other counts are adapted
        (:func:`speechbrain_kd.dataio.adapt_channels`).
    first_conv_channels : int
    first_conv_kernel : int
        Kernel and stride of the first convolution.
    block_channels : list of int
        Output channels of each residual block.
    pool_size : int
    final_channels : int
        Channels of the 1x1 convolution before pooling.
    embedding_dim : int
    pooling : str
        ``"avgmax"`` or ``"attention"``.
    attention_heads : int
    negative_slope : float

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
                ResidualBlock(channels, out_channels, pool_size, negative_slope)
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

    @staticmethod
    def _frames(x, lengths):
        """``[B, 1, T]`` mask of the valid frames of ``x`` ``[B, C, T]``."""
        if lengths is None:
            return None
        return frame_mask(x.transpose(1, 2), lengths).transpose(1, 2)

    def _mask(self, x, lengths):
        mask = self._frames(x, lengths)
        return x if mask is None else x * mask

    def forward(self, wavs, lengths=None):
        """Waveforms ``[B, T]`` or ``[B, T, C]`` -> embeddings ``[B, E]``."""
        if wavs.dim() == 2:
            wavs = wavs.unsqueeze(-1)
        wavs = adapt_channels(wavs, self.in_channels)
        if wavs.shape[1] < self.first_conv_kernel:
            raise ValueError(
                f"input of {wavs.shape[1]} samples is shorter than the first "
                f"convolution ({self.first_conv_kernel} samples)"
            )
        # Relative lengths survive striding and pooling unchanged; padded
        # frames are zeroed after every stage so that they look like the
        # convolutions' own zero padding.
        x = self._mask(self.first_conv(wavs.transpose(1, 2)), lengths)
        for block in self.blocks:
            x = self._mask(block(x, self._frames(x, lengths)), lengths)
        x = self.final_conv(x)
        pooled = self.pooling(x.transpose(1, 2), lengths)
        return self.embedding(pooled)
