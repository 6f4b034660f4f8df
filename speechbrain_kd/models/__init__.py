"""Model families: each is an ``embedding_model`` and a ``classifier``.

``embedding_model(wavs, lengths)`` takes raw waveforms (``[B, T]`` or
``[B, T, C]``) and returns ``[B, E]``; ``classifier`` maps embeddings to
logits. Every module records its constructor arguments in ``.config`` so
that :mod:`speechbrain_kd.models.spec` can rebuild it.
"""

from speechbrain_kd.models.classifier import SceneClassifier
from speechbrain_kd.models.families import (
    build_family,
    family_module,
    family_overrides,
    known_families,
)
from speechbrain_kd.models.logmel_cnn import InvertedResidual, LogMelCNN
from speechbrain_kd.models.pooling import (
    GlobalAvgMaxPooling,
    SelfMultiHeadAttentionPooling,
    make_pooling,
)
from speechbrain_kd.models.raw_cnn import RawWaveformCNN, ResidualBlock
from speechbrain_kd.models.spec import (
    build_module,
    module_spec,
    read_model_spec,
    write_model_spec,
)

__all__ = [
    "GlobalAvgMaxPooling",
    "InvertedResidual",
    "LogMelCNN",
    "RawWaveformCNN",
    "ResidualBlock",
    "SceneClassifier",
    "SelfMultiHeadAttentionPooling",
    "build_family",
    "build_module",
    "family_module",
    "family_overrides",
    "known_families",
    "make_pooling",
    "module_spec",
    "read_model_spec",
    "write_model_spec",
]
