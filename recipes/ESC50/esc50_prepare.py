"""Data preparation for ESC-50 (Piczak, "ESC: Dataset for Environmental
Sound Classification", ACM Multimedia 2015).

The official layout: ``audio/<fold>-<source>-<take>-<target>.wav`` (5-s
mono clips at 44.1 kHz) and ``meta/esc50.csv`` with the columns
``filename, fold, target, category, esc10, src_file, take``: 2000 clips,
50 classes, 5 folds that keep the clips cut from one source recording
together. Writes the SpeechBrain manifests ``train.csv``, ``valid.csv``
and ``test.csv`` (``ID, duration, wav, label, fold, src_file,
sample_rate, channels``) of one cross-validation split: ``test_fold``
is the test split, ``valid_fold`` (default: the next fold) the
validation split, the other three train.

Bad metadata is refused with the row at fault: a fold outside 1-5, a fold
without clips, a target outside 0-49, two categories for one target, a
listed file that is missing. Skips the work when ``prepare_opts.json``
records the same options and fingerprint of ``meta/esc50.csv``.
"""

import csv
import hashlib
import io
import json
import logging
from pathlib import Path

import soundfile

from speechbrain_kd.files import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

FOLDS = (1, 2, 3, 4, 5)
N_CLASSES = 50
META_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file"]
MANIFEST_COLUMNS = [
    "ID", "duration", "wav", "label", "fold", "src_file", "sample_rate",
    "channels",
]  # fmt: skip
OPTIONS_FILE = "prepare_opts.json"
SPLITS = ("train", "valid", "test")


def prepare_esc50(
    data_folder, save_folder, test_fold=1, valid_fold=None, esc10=False
):
    """Write the manifests of one ESC-50 cross-validation split.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        The ESC-50 folder (``audio/``, ``meta/esc50.csv``).
    save_folder : str or pathlib.Path
        Where ``train.csv``, ``valid.csv`` and ``test.csv`` go.
    test_fold : int
        1 to 5.
    valid_fold : int, optional
        1 to 5, not ``test_fold``; default the fold after ``test_fold``.
    esc10 : bool
        Only the 10 classes of the ESC-10 subset (``esc10`` column).

    Returns
    -------
    dict
        Clips per split.

    Example
    -------
    >>> from esc50_demo import generate_esc50_demo
    >>> tmp = getfixture("tmpdir")
    >>> data = generate_esc50_demo(tmp + "/esc50", n_classes=3,
    ...     clips_per_class=5, seconds=1.0, sample_rate=8000)
    >>> prepare_esc50(data, tmp + "/manifests", test_fold=2)
    {'train': 9, 'valid': 3, 'test': 3}
    >>> prepare_esc50(data, tmp + "/m2", test_fold=6)
    Traceback (most recent call last):
    ...
    ValueError: test_fold=6: give a fold from 1 to 5
    """
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    valid_fold = _valid_fold(test_fold, valid_fold)
    meta_file = data_folder / "meta" / "esc50.csv"
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"{meta_file} is missing: data_folder must be the ESC-50 folder "
            "(audio/, meta/esc50.csv)"
        )
    options = {
        "data_folder": str(data_folder.absolute()),
        "test_fold": test_fold,
        "valid_fold": valid_fold,
        "esc10": bool(esc10),
        "fingerprint": hashlib.sha256(meta_file.read_bytes()).hexdigest(),
    }
    done = save_folder / OPTIONS_FILE
    if done.is_file() and json.loads(done.read_text())["options"] == options:
        return json.loads(done.read_text())["counts"]
    clips = read_meta(meta_file)
    if esc10:
        clips = [clip for clip in clips if clip["esc10"]]
    split_of = {test_fold: "test", valid_fold: "valid"}
    rows = {split: [] for split in SPLITS}
    for clip in clips:
        path = (data_folder / "audio" / clip["filename"]).absolute()
        if not path.is_file():
            raise FileNotFoundError(f"{clip['where']}: {path} is missing")
        info = soundfile.info(str(path))
        rows[split_of.get(clip["fold"], "train")].append(
            {
                "ID": Path(clip["filename"]).stem,
                "duration": f"{info.frames / info.samplerate:.4f}",
                "wav": str(path),
                "label": clip["category"],
                "fold": clip["fold"],
                "src_file": clip["src_file"],
                "sample_rate": info.samplerate,
                "channels": info.channels,
            }
        )
    done.unlink(missing_ok=True)  # the options file vouches for the rest
    for split, split_rows in rows.items():
        write_text_atomic(save_folder / f"{split}.csv", _csv(split_rows))
    counts = {split: len(split_rows) for split, split_rows in rows.items()}
    write_json_atomic(done, {"options": options, "counts": counts})
    logger.info("prepared %s in %s", counts, save_folder)
    return counts


def _valid_fold(test_fold, valid_fold):
    """``valid_fold`` (default: the fold after ``test_fold``), checked."""
    valid_fold = FOLDS[test_fold % 5] if valid_fold is None else valid_fold
    for name, fold in (("test_fold", test_fold), ("valid_fold", valid_fold)):
        if isinstance(fold, bool) or fold not in FOLDS:
            raise ValueError(f"{name}={fold!r}: give a fold from 1 to 5")
    if valid_fold == test_fold:
        raise ValueError(
            f"valid_fold={valid_fold} is the test fold: give another one"
        )
    return valid_fold


def training_categories(settings):
    """The classes of a phase's training folds, read before anything else.

    Lets a phase refuse a model over its limits before it writes anything.
    None when ``meta/esc50.csv`` is missing (data preparation names that).

    Arguments
    ---------
    settings : dict
        ``data_folder``, ``test_fold``, ``valid_fold`` and ``esc10``.

    Returns
    -------
    set of str, or None

    Example
    -------
    >>> from esc50_demo import generate_esc50_demo
    >>> data = generate_esc50_demo(getfixture("tmpdir") + "/esc50",
    ...     n_classes=3, clips_per_class=5, seconds=1.0, sample_rate=8000)
    >>> settings = {"data_folder": data, "test_fold": 1, "valid_fold": None,
    ...     "esc10": True}
    >>> sorted(training_categories(settings))
    ['dog', 'rooster']
    """
    meta_file = Path(settings["data_folder"]) / "meta" / "esc50.csv"
    if not meta_file.is_file():
        return None
    test_fold = settings["test_fold"]
    held_out = (test_fold, _valid_fold(test_fold, settings["valid_fold"]))
    return {
        clip["category"]
        for clip in read_meta(meta_file)
        if clip["fold"] not in held_out
        and (clip["esc10"] or not settings["esc10"])
    }


def read_meta(meta_file):
    """The rows of ``meta/esc50.csv``, checked.

    Arguments
    ---------
    meta_file : str or pathlib.Path

    Returns
    -------
    list of dict
        ``filename``, ``fold`` (int), ``target`` (int), ``category``,
        ``esc10`` (bool), ``src_file`` and ``where`` (file and line).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/esc50.csv"
    >>> _ = open(path, "w").write(
    ...     "filename,fold,target,category,esc10,src_file,take\\n"
    ...     "1-1-A-0.wav,1,0,dog,True,1,A\\n")
    >>> read_meta(path)
    Traceback (most recent call last):
    ...
    ValueError: .../esc50.csv has no clip in fold(s) [2, 3, 4, 5]: ESC-50 ...
    """
    clips, category_of = [], {}
    with open(meta_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [
            c for c in META_COLUMNS if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise ValueError(
                f"{meta_file} lacks the column(s) {missing} (found "
                f"{reader.fieldnames})"
            )
        for line, row in enumerate(reader, start=2):
            where = f"{meta_file}, line {line}"
            fold, target = (
                _integer(row, "fold", where),
                _integer(row, "target", where),
            )
            if fold not in FOLDS:
                raise ValueError(f"{where}: fold {fold} is not one of 1-5")
            if not 0 <= target < N_CLASSES:
                raise ValueError(
                    f"{where}: target {target} is outside the label set "
                    f"0-{N_CLASSES - 1}"
                )
            first = category_of.setdefault(target, (row["category"], where))
            if first[0] != row["category"]:
                raise ValueError(
                    f"{where}: target {target} is {row['category']!r} but "
                    f"{first[0]!r} at {first[1]}"
                )
            clips.append(
                {
                    "filename": row["filename"],
                    "fold": fold,
                    "target": target,
                    "category": row["category"],
                    "esc10": row["esc10"].strip().lower() == "true",
                    "src_file": row["src_file"],
                    "where": where,
                }
            )
    empty = sorted(set(FOLDS) - {clip["fold"] for clip in clips})
    if empty:
        raise ValueError(
            f"{meta_file} has no clip in fold(s) {empty}: ESC-50 has the "
            "five folds 1-5"
        )
    return clips


def _integer(row, column, where):
    try:
        return int(row[column])
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: {column} {row[column]!r} is not a whole number"
        ) from None


def _csv(rows):
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
