"""A log-mel CNN with the same interface as the raw-waveform CNN.

Features are SpeechBrain filterbanks (:class:`speechbrain.lobes.features.
Fbank`), one map per audio channel; teachers and students of both families
can be mixed in one distillation.
"""

import torch
from speechbrain.augment.freq_domain import SpectrogramDrop
from speechbrain.lobes.features import Fbank

from speechbrain_kd.audio import batch_of_channels
from speechbrain_kd.models.pooling import make_pooling, valid_frames


def default_n_fft(win_length, sample_rate):
    """The smallest power of two that holds a window of ``win_length`` ms.

    Example
    -------
    >>> default_n_fft(25, 16000), default_n_fft(25, 48000)
    (512, 2048)
    """
    window = int(round(win_length * sample_rate / 1000))  # as SpeechBrain
    return 1 << max(window - 1, 1).bit_length()


class LogMelCNN(torch.nn.Module):
    """Log-mel filterbanks per channel, 2-D conv blocks, time pooling.

    The log-mels of each audio channel are one input map of the 2-D
    convolutions (``[B, channels, frames, n_mels]``), normalised by a
    BatchNorm. Each conv block is a 3x3 convolution, BatchNorm, ReLU and
    2x2 max pooling (``ceil_mode``: short clips keep a frame). The
    frequency axis is then averaged and the time axis pooled by name
    (``"avgmax"`` or ``"attention"``, see
    :func:`speechbrain_kd.models.pooling.make_pooling`), followed by a
    linear embedding layer.

    Regularisation for small data, active in training only: SpecAugment's
    time and frequency masking (Park et al., Interspeech 2019; SpeechBrain's
    :class:`~speechbrain.augment.freq_domain.SpectrogramDrop`: bands of
    each channel's normalised log-mels set to their mean) and dropout
    before the embedding layer.

    Padding: relative lengths are followed exactly through the STFT
    (``1 + samples // hop`` frames, SpeechBrain's centred STFT with zero
    padding) and every pooling, and padded frames are zeroed before each
    convolution, so a zero-padded clip gives the same embedding as the
    clip alone (in eval mode; the per-clip 80 dB floor of SpeechBrain's
    log-mels can differ by the last frames' energy).

    Arguments
    ---------
    sample_rate : int
    in_channels : int
        Channels the model takes (inputs are adapted with
        :func:`speechbrain_kd.audio.adapt_channels`).
    n_mels : int
    n_fft : int, optional
        FFT size; None (default): the smallest power of two that holds the
        window at ``sample_rate`` (512 at 16 kHz, 2048 at 44.1 and 48 kHz).
    hop_length : float
        Milliseconds between frames.
    win_length : float
        Milliseconds per frame (at most ``n_fft`` samples).
    conv_channels : list of int
        Output channels of the conv blocks.
    embedding_dim : int
    pooling : str
        ``"avgmax"`` or ``"attention"`` over time.
    attention_heads : int
        Must divide ``conv_channels[-1]``.
    time_masks, freq_masks : int
        Masks per clip and channel in training (0: none).
    time_mask_frames, freq_mask_bins : int
        The largest mask (frames, mel bands); each is 1 to this wide.
    dropout : float
        Dropout before the embedding layer.
    block : str
        ``"conv"``: a 3x3 convolution per block; ``"inverted_residual"``:
        :class:`InvertedResidual` (depthwise-separable, MobileNetV2), a
        fraction of the parameters and MACs for devices.
    expansion : int
        Channel expansion of the inverted residual blocks.
    input_norm : str
        ``"channel"``: one BatchNorm statistic per audio channel;
        ``"band"``: one per mel band (all channels), which removes each
        band's level as the standardised features of a linear model do.

    Example
    -------
    >>> model = LogMelCNN(sample_rate=8000, n_mels=16, n_fft=256,
    ...     conv_channels=[8, 16], embedding_dim=8)
    >>> model(torch.randn(2, 8000, 2), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 8])
    >>> model(torch.randn(1, 8000)).shape  # mono
    torch.Size([1, 8])
    >>> LogMelCNN(sample_rate=48000, conv_channels=[8]).config["n_fft"]
    2048
    >>> masked = LogMelCNN(sample_rate=8000, n_mels=16, conv_channels=[8],
    ...     time_masks=2, freq_masks=2, dropout=0.2)
    >>> band = LogMelCNN(sample_rate=8000, n_mels=16, conv_channels=[8],
    ...     input_norm="band")
    >>> band.input_norm.num_features  # one per mel band
    16
    >>> masked.train()(torch.randn(2, 8000, 2)).shape
    torch.Size([2, 128])
    """

    def __init__(
        self,
        sample_rate=16000,
        in_channels=2,
        n_mels=64,
        n_fft=None,
        hop_length=20,
        win_length=25,
        conv_channels=(32, 64, 128, 128),
        embedding_dim=128,
        pooling="avgmax",
        attention_heads=4,
        time_masks=0,
        time_mask_frames=10,
        freq_masks=0,
        freq_mask_bins=8,
        dropout=0.0,
        input_norm="channel",
        block="conv",
        expansion=4,
    ):
        super().__init__()
        # Same rounding as SpeechBrain's STFT.
        window = int(round(win_length * sample_rate / 1000))
        if n_fft is None:
            n_fft = default_n_fft(win_length, sample_rate)
        self.config = {
            "sample_rate": sample_rate,
            "in_channels": in_channels,
            "n_mels": n_mels,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "win_length": win_length,
            "conv_channels": list(conv_channels),
            "embedding_dim": embedding_dim,
            "pooling": pooling,
            "attention_heads": attention_heads,
            "input_norm": input_norm,
            "block": block,
            "expansion": expansion,
        }
        if not conv_channels:
            raise ValueError("conv_channels needs at least one block")
        self.in_channels = in_channels
        self.hop = int(round(hop_length * sample_rate / 1000))
        if window > n_fft:
            raise ValueError(
                f"win_length={win_length} ms is {window} samples at "
                f"{sample_rate} Hz, more than n_fft={n_fft}"
            )
        if self.hop < 1:
            raise ValueError(
                f"hop_length={hop_length} ms is less than one sample at "
                f"{sample_rate} Hz"
            )
        self.fbank = Fbank(
            sample_rate=sample_rate,
            n_fft=n_fft,
            n_mels=n_mels,
            hop_length=hop_length,
            win_length=win_length,
        )
        self.masks = torch.nn.ModuleList(
            SpectrogramDrop(
                drop_length_low=1,
                drop_length_high=width,
                drop_count_low=count,
                drop_count_high=count,
                dim=dim,
            )
            for count, width, dim in (
                (time_masks, time_mask_frames, 1),
                (freq_masks, freq_mask_bins, 2),
            )
            if count > 0
        )
        self.dropout = torch.nn.Dropout(dropout)
        norms = {"channel": in_channels, "band": n_mels}
        if input_norm not in norms:
            raise ValueError(
                f"input_norm={input_norm!r}; choose one of {sorted(norms)}"
            )
        self.band_norm = input_norm == "band"
        self.input_norm = torch.nn.BatchNorm2d(norms[input_norm])
        if block not in ("conv", "inverted_residual"):
            raise ValueError(
                f"block={block!r}; choose 'conv' or 'inverted_residual'"
            )
        self.inverted = block == "inverted_residual"
        blocks, channels = [], in_channels
        for out_channels in conv_channels:
            if self.inverted:
                blocks.append(
                    InvertedResidual(channels, out_channels, expansion)
                )
            else:
                blocks.append(
                    torch.nn.Sequential(
                        torch.nn.Conv2d(channels, out_channels, 3, padding=1),
                        torch.nn.BatchNorm2d(out_channels),
                        torch.nn.ReLU(),
                    )
                )
            channels = out_channels
        self.blocks = torch.nn.ModuleList(blocks)
        self.pool = torch.nn.MaxPool2d(2, ceil_mode=True)
        self.pooling = make_pooling(pooling, channels, attention_heads)
        self.embedding = torch.nn.Linear(
            self.pooling.output_size, embedding_dim
        )

    def features(self, wavs):
        """Waveforms ``[B, T, C]`` -> log-mels ``[B, C, frames, n_mels]``.

        Arguments
        ---------
        wavs : torch.Tensor

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> model = LogMelCNN(sample_rate=8000, n_mels=16, n_fft=256)
        >>> model.features(torch.randn(2, 800, 2)).shape  # hop 160
        torch.Size([2, 2, 6, 16])
        """
        batch, time, channels = wavs.shape
        flat = wavs.transpose(1, 2).reshape(batch * channels, time)
        feats = self.fbank(flat)
        return feats.view(batch, channels, *feats.shape[1:])

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
        wavs = batch_of_channels(wavs, self.in_channels, "LogMelCNN")
        batch, time, _ = wavs.shape
        x = self.features(wavs)
        if self.band_norm:  # bands as BatchNorm's channels
            x = self.input_norm(x.transpose(1, 3)).transpose(1, 3)
        else:
            x = self.input_norm(x)
        if self.training and len(self.masks):
            # Masked after normalisation: a zeroed band is the mean level.
            maps = x.reshape(-1, *x.shape[2:])  # [B * C, frames, n_mels]
            for mask in self.masks:
                maps = mask(maps)
            x = maps.view(x.shape)
        frames = None
        if lengths is not None:
            samples = valid_frames(lengths, time, batch, wavs.device)
            frames = (1 + samples // self.hop).clamp(max=x.shape[2])
        for block in self.blocks:
            x = zero_padding(x, frames)
            x = block(x, frames) if self.inverted else block(x)
            # ReLU output is >= 0: zeroed padding never wins the max.
            x = self.pool(zero_padding(x, frames))
            if frames is not None:
                frames = -(-frames // 2)
        x = x.mean(dim=-1).transpose(1, 2)  # frequency pooled: [B, T, C]
        relative = None if frames is None else frames.to(x.dtype) / x.shape[1]
        return self.embedding(self.dropout(self.pooling(x, relative)))


def zero_padding(x, frames):
    """Zero the frames of ``x`` ``[B, C, T, F]`` beyond ``frames`` ``[B]``.

    Example
    -------
    >>> zero_padding(torch.ones(2, 1, 3, 1), torch.tensor([3, 1]))[:, 0, :, 0]
    tensor([[1., 1., 1.],
            [1., 0., 0.]])
    """
    if frames is None:
        return x
    steps = torch.arange(x.shape[2], device=x.device)
    mask = steps[None, :] < frames[:, None]
    return x.masked_fill(~mask[:, None, :, None], 0.0)


class InvertedResidual(torch.nn.Module):
    """MobileNetV2's inverted residual block on time-frequency maps.

    A 1x1 convolution expands the channels ``expansion`` times, a 3x3
    depthwise convolution filters each channel, a 1x1 convolution projects
    to ``out_channels`` (each with BatchNorm; ReLU after the first two),
    and the input is added when the shapes allow (Sandler et al., "
    MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018;
    the building block of CP-JKU's CP-Mobile and the DCASE 2024 task 1
    baseline). A ReLU follows the sum, so that outputs are >= 0 as the
    max pooling of padded frames needs, and padded frames are zeroed
    before the depthwise convolution, the only one that mixes frames.

    Arguments
    ---------
    in_channels : int
    out_channels : int
    expansion : int

    Example
    -------
    >>> block = InvertedResidual(8, 8, expansion=2)
    >>> block(torch.randn(2, 8, 5, 4), torch.tensor([5, 3])).shape
    torch.Size([2, 8, 5, 4])
    >>> sum(p.numel() for p in block.parameters())  # a 3x3 conv: 584
    480
    """

    def __init__(self, in_channels, out_channels, expansion=4):
        super().__init__()
        hidden = in_channels * expansion
        self.expand = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, hidden, 1, bias=False),
            torch.nn.BatchNorm2d(hidden),
            torch.nn.ReLU(),
        )
        self.depthwise = torch.nn.Sequential(
            torch.nn.Conv2d(
                hidden, hidden, 3, padding=1, groups=hidden, bias=False
            ),
            torch.nn.BatchNorm2d(hidden),
            torch.nn.ReLU(),
        )
        self.project = torch.nn.Sequential(
            torch.nn.Conv2d(hidden, out_channels, 1, bias=False),
            torch.nn.BatchNorm2d(out_channels),
        )
        self.residual = in_channels == out_channels

    def forward(self, x, frames=None):
        """``[B, C, T, F]`` -> ``[B, out_channels, T, F]``.

        Arguments
        ---------
        x : torch.Tensor
        frames : torch.Tensor, optional
            Valid frames per clip ``[B]``.

        Returns
        -------
        torch.Tensor
        """
        out = self.project(self.depthwise(zero_padding(self.expand(x), frames)))
        if self.residual:
            out = out + x
        return torch.relu(out)
