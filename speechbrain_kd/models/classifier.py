"""The output layer shared by every model family."""

import torch


class SceneClassifier(torch.nn.Module):
    """A bias-free linear layer from embeddings to class logits.

    Jung et al., IEEE Access 2020, use a bias-free output layer on the
    128-dimensional embedding.

    Arguments
    ---------
    input_size : int
        Embedding size.
    n_classes : int
        Number of classes.

    Example
    -------
    >>> SceneClassifier(128, 10)(torch.randn(4, 128)).shape
    torch.Size([4, 10])
    """

    def __init__(self, input_size=128, n_classes=10):
        super().__init__()
        self.config = {"input_size": input_size, "n_classes": n_classes}
        self.linear = torch.nn.Linear(input_size, n_classes, bias=False)

    def forward(self, embeddings):
        """Return the logits ``[..., n_classes]``."""
        return self.linear(embeddings)
