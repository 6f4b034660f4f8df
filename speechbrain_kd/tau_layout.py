"""The one writer of the TAU Urban Acoustic Scenes development-set layout.

Both sets this project makes, the synthetic demo set
(:mod:`speechbrain_kd.demo_data`) and the set cut from real recordings
(``benchmarks/real_scenes``), are written through it, so that
``recipes/DCASE2019/dcase2019_prepare.py`` reads them as it reads TAU::

    audio/<clip>.wav                         16-bit PCM
    meta.csv                                 filename scene_label identifier
                                             source_label
    evaluation_setup/fold1_train.csv         filename scene_label
    evaluation_setup/fold1_evaluate.csv      filename scene_label
    evaluation_setup/fold1_test.csv          filename

Tab-separated, with headers, ``\\n`` line endings, UTF-8; the lists keep
the clips in the order they are given (the caller fixes it).
"""

import csv
from pathlib import Path

import numpy as np
import soundfile

SPLITS = ("train", "evaluate")


def read_tau_rows(path, needed):
    """Yield ``(line number, row)`` of a tab-separated TAU list or meta file.

    Arguments
    ---------
    path : str or pathlib.Path
        A file with a header line (``meta.csv``, ``fold1_train.csv`` ...).
    needed : sequence of str
        Columns the file must have.

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "fold1_train.csv"
    >>> _ = path.write_text("filename\\tscene_label\\naudio/a.wav\\tbus\\n")
    >>> list(read_tau_rows(path, ["filename"]))
    [(2, {'filename': 'audio/a.wav', 'scene_label': 'bus'})]
    >>> list(read_tau_rows(path, ["identifier"]))
    Traceback (most recent call last):
    ...
    ValueError: ... lacks the column(s) ['identifier'] (found ['filename', \
'scene_label']); TAU files are tab-separated
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {missing} (found "
                f"{reader.fieldnames}); TAU files are tab-separated"
            )
        yield from enumerate(reader, start=2)


def write_lines(path, header, lines):
    """Write a header and lines, one a line, ``\\n`` endings, UTF-8.

    Missing parent folders are created.

    Arguments
    ---------
    path : str or pathlib.Path
    header : str
    lines : iterable of str

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "lists" / "x.csv"
    >>> write_lines(path, "filename\\tscene_label", ["a.wav\\tpark"])
    >>> path.read_bytes()
    b'filename\\tscene_label\\na.wav\\tpark\\n'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join([header, *lines]) + "\n")


def write_clip(path, audio, rate):
    """Write a clip as 16-bit PCM WAV (samples clipped to [-1, 1]).

    Missing parent folders are created.

    Arguments
    ---------
    path : str or pathlib.Path
    audio : numpy.ndarray
        ``(time,)`` or ``(time, channels)``.
    rate : int

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "audio" / "c.wav"
    >>> write_clip(path, np.zeros((80, 2)), 8000)
    >>> soundfile.info(str(path)).subtype, soundfile.info(str(path)).channels
    ('PCM_16', 2)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(
        str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16"
    )


def write_tau_lists(folder, clips):
    """Write ``meta.csv`` and ``evaluation_setup/fold1_*.csv``.

    Arguments
    ---------
    folder : str or pathlib.Path
    clips : list of dict
        In the order the lists get them: ``filename`` (relative to
        ``folder``), ``scene``, ``identifier`` (the recording location),
        ``split`` (``"train"`` or ``"evaluate"``) and, optionally,
        ``device`` (the ``source_label``; default ``"a"``). The test list
        holds the evaluation clips.

    Returns
    -------
    dict
        Number of clips per split.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> clips = [
    ...     {"filename": "audio/rain-x_a-0-a.wav", "scene": "rain",
    ...      "identifier": "x_a", "split": "train"},
    ...     {"filename": "audio/rain-x_b-0-s1.wav", "scene": "rain",
    ...      "identifier": "x_b", "split": "evaluate", "device": "s1"},
    ... ]
    >>> write_tau_lists(folder, clips)
    {'train': 1, 'evaluate': 1}
    >>> print((folder / "meta.csv").read_text(), end="")
    filename	scene_label	identifier	source_label
    audio/rain-x_a-0-a.wav	rain	x_a	a
    audio/rain-x_b-0-s1.wav	rain	x_b	s1
    >>> print((folder / "evaluation_setup/fold1_test.csv").read_text(), end="")
    filename
    audio/rain-x_b-0-s1.wav
    """
    folder = Path(folder)
    unknown = sorted({c["split"] for c in clips} - set(SPLITS))
    if unknown:
        raise ValueError(f"split {unknown[0]!r} is not one of {SPLITS}")
    write_lines(
        folder / "meta.csv",
        "filename\tscene_label\tidentifier\tsource_label",
        [
            f"{c['filename']}\t{c['scene']}\t{c['identifier']}\t"
            f"{c.get('device', 'a')}"
            for c in clips
        ],
    )
    setup = folder / "evaluation_setup"
    counts = {}
    for split in SPLITS:
        rows = [c for c in clips if c["split"] == split]
        counts[split] = len(rows)
        write_lines(
            setup / f"fold1_{split}.csv",
            "filename\tscene_label",
            [f"{c['filename']}\t{c['scene']}" for c in rows],
        )
    write_lines(
        setup / "fold1_test.csv",
        "filename",
        [c["filename"] for c in clips if c["split"] == "evaluate"],
    )
    return counts


def write_tau_layout(folder, clips, rate):
    """Write the clips' audio (:func:`write_clip`) and the TAU lists
    (:func:`write_tau_lists`).

    Arguments
    ---------
    folder : str or pathlib.Path
    clips : list of dict
        As :func:`write_tau_lists` takes them, each also with ``audio``,
        ``(time, channels)`` samples.
    rate : int

    Returns
    -------
    dict
        What :func:`write_tau_lists` returns.

    Example
    -------
    >>> clip = {"filename": "audio/rain-p_a-0-a.wav", "scene": "rain",
    ...         "identifier": "p_a", "split": "train"}
    >>> folder = Path(getfixture("tmpdir"))
    >>> write_tau_layout(folder, [{**clip, "audio": np.zeros((800, 2))}], 8000)
    {'train': 1, 'evaluate': 0}
    >>> sorted(p.name for p in (folder / "audio").iterdir())
    ['rain-p_a-0-a.wav']
    """
    for clip in clips:
        write_clip(Path(folder) / clip["filename"], clip["audio"], rate)
    return write_tau_lists(folder, clips)
