"""One label order for every phase, checked rather than assumed.

Teachers and students must agree on the order of their outputs. SpeechBrain's
``CategoricalEncoder.load_or_create`` numbers labels in the order they are
first met in a manifest and, when its file is missing, silently yields an
empty encoder. Here labels are sorted, written once (on the main process),
read back and compared with what the data holds.
"""

from pathlib import Path

from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.distributed import run_on_main


def encoder_labels(encoder):
    """Return the labels of a ``CategoricalEncoder`` in index order.

    Arguments
    ---------
    encoder : speechbrain.dataio.encoder.CategoricalEncoder

    Returns
    -------
    list of str

    Example
    -------
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["park", "bus"])
    >>> encoder_labels(encoder)
    ['park', 'bus']
    """
    return [encoder.ind2lab[index] for index in range(len(encoder))]


def _write_encoder_if_missing(path, labels):
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    tmp = Path(f"{path}.tmp")
    encoder.save(tmp)
    tmp.replace(path)


def load_or_create_label_encoder(path, labels):
    """Create the label encoder file from ``labels``, or check the existing.

    Arguments
    ---------
    path : str or pathlib.Path
        Where the encoder lives (``<save_folder>/label_encoder.txt``); made
        absolute so that it never depends on the working directory.
    labels : iterable of str
        The labels the data holds; they are sorted.

    Returns
    -------
    CategoricalEncoder

    Raises
    ------
    ValueError
        When an existing file holds other labels (a stale output folder).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/label_encoder.txt"
    >>> encoder = load_or_create_label_encoder(path, ["park", "bus", "park"])
    >>> encoder_labels(encoder)
    ['bus', 'park']
    >>> load_or_create_label_encoder(path, ["bus", "tram"])
    Traceback (most recent call last):
    ...
    ValueError: ... holds labels ['bus', 'park'] but the data has ...
    """
    path = Path(path).absolute()
    wanted = sorted(set(labels))
    if not wanted:
        raise ValueError(f"no labels to write to {path}")
    # Every process calls run_on_main: it holds a barrier.
    run_on_main(_write_encoder_if_missing, args=[path, wanted])
    encoder = CategoricalEncoder()
    if not path.is_file() or not encoder.load_if_possible(path):
        raise FileNotFoundError(f"could not read the label encoder {path}")
    found = encoder_labels(encoder)
    # Checked here; also silences SpeechBrain's "expect_len" warning.
    encoder.expect_len(len(found))
    if found != wanted:
        raise ValueError(
            f"{path} holds labels {found} but the data has {wanted}: the "
            "output folder belongs to another dataset; use a new "
            "--output_folder or delete the file"
        )
    return encoder


def n_classes_for(labels, n_classes=None, source="the training manifest"):
    """Return the number of classes: that of ``labels``, checked.

    Arguments
    ---------
    labels : list of str
        The labels the data holds.
    n_classes : int, optional
        A number asked for explicitly (``--n_classes``); ``None``: take it
        from the data.
    source : str
        Where the labels come from (named in the error).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        When ``n_classes`` disagrees with the data.

    Example
    -------
    >>> n_classes_for(["bus", "park"])
    2
    >>> n_classes_for(["bus", "park"], n_classes=10)
    Traceback (most recent call last):
    ...
    ValueError: n_classes=10 was asked for, but the training manifest has 2...
    """
    if n_classes is None or n_classes == len(labels):
        return len(labels)
    raise ValueError(
        f"n_classes={n_classes} was asked for, but {source} has "
        f"{len(labels)} scenes {list(labels)}: drop --n_classes (it follows "
        "the data) or point --data_folder at the data you meant"
    )
