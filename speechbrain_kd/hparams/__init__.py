"""The HyperPyYAML fragments the package ships, as package data.

Model families (``models/<name>.yaml``, built by
:func:`speechbrain_kd.models.build_family`) and distillation losses
(``kd/<name>.yaml``, built by :func:`speechbrain_kd.losses.build_kd_loss`).
A recipe names a fragment (``model: logmel_cnn``) instead of giving its
path, so the same recipe works from an installed wheel, an editable install
or a copy of ``recipes/`` anywhere.
"""

from importlib import resources
from pathlib import Path


def fragments_folder(kind):
    """Return the folder of the package's ``kind`` fragments.

    Arguments
    ---------
    kind : str
        ``"models"`` or ``"kd"``.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> sorted(path.name for path in fragments_folder("kd").glob("*.yaml"))
    ['cpjku.yaml', 'published.yaml']
    >>> fragments_folder("losses")
    Traceback (most recent call last):
    ...
    FileNotFoundError: speechbrain_kd has no 'losses' fragments (...)...
    """
    # pip unpacks a wheel into a folder, so a resource is a plain path that
    # HyperPyYAML can open (and name in its errors).
    folder = Path(resources.files(__name__) / kind)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"speechbrain_kd has no {kind!r} fragments ({folder} is missing): "
            "an install without its package data; reinstall speechbrain-kd"
        )
    return folder
