"""A log-mel CNN with the same interface as the raw-waveform CNN.

Features are SpeechBrain filterbanks, one map per channel; teachers and
students of both families can be mixed in one distillation.
"""

import torch
from speechbrain.lobes.features import Fbank

from speechbrain_kd.dataio import adapt_channels
from speechbrain_kd.models.pooling import make_pooling


class LogMelCNN(torch.nn.Module):
    """Log-mel filterbanks per channel, 2-D conv blocks, time pooling.

    Arguments
    ---------
    sample_rate : int
    in_channels : int
        Channels the model takes (inputs are adapted).
    n_mels : int
    n_fft : int
    hop_length : float
        Milliseconds between frames.
    win_length : float
        Milliseconds per frame (at most ``n_fft`` samples).
    conv_channels : list of int
        Channels of the conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max
        pooling on frequency and time).
    embedding_dim : int
    pooling : str
        ``"avgmax"`` or ``"attention"`` over time.
    attention_heads : int

    Example
    -------
    >>> model = LogMelCNN(sample_rate=8000, n_mels=16, n_fft=256,
    ...     conv_channels=[8, 16], embedding_dim=8)
    >>> model(torch.randn(2, 8000, 2), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        sample_rate=16000,
        in_channels=2,
        n_mels=64,
        n_fft=1024,
        hop_length=20,
        win_length=25,
        conv_channels=(32, 64, 128, 128),
        embedding_dim=128,
        pooling="avgmax",
        attention_heads=4,
    ):
        super().__init__()
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
        }
        self.in_channels = in_channels
        window = int(win_length * sample_rate / 1000)
        if window > n_fft:
            raise ValueError(
                f"win_length={win_length} ms is {window} samples at "
                f"{sample_rate} Hz, more than n_fft={n_fft}"
            )
        self.fbank = Fbank(
            sample_rate=sample_rate,
            n_fft=n_fft,
            n_mels=n_mels,
            hop_length=hop_length,
            win_length=win_length,
        )
        self.input_norm = torch.nn.BatchNorm2d(in_channels)
        layers, channels = [], in_channels
        for out_channels in conv_channels:
            layers += [
                torch.nn.Conv2d(channels, out_channels, 3, padding=1),
                torch.nn.BatchNorm2d(out_channels),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels = out_channels
        self.convs = torch.nn.Sequential(*layers)
        self.pooling = make_pooling(pooling, channels, attention_heads)
        self.embedding = torch.nn.Linear(
            self.pooling.output_size, embedding_dim
        )

    def features(self, wavs):
        """Waveforms ``[B, T, C]`` -> log-mels ``[B, C, frames, n_mels]``."""
        batch, time, channels = wavs.shape
        flat = wavs.transpose(1, 2).reshape(batch * channels, time)
        feats = self.fbank(flat)
        return feats.view(batch, channels, *feats.shape[1:])

    def forward(self, wavs, lengths=None):
        """Waveforms ``[B, T]`` or ``[B, T, C]`` -> embeddings ``[B, E]``."""
        if wavs.dim() == 2:
            wavs = wavs.unsqueeze(-1)
        wavs = adapt_channels(wavs, self.in_channels)
        x = self.convs(self.input_norm(self.features(wavs)))
        x = x.mean(dim=-1).transpose(1, 2)  # frequency pooled: [B, T, C]
        return self.embedding(self.pooling(x, lengths))
