"""Data preparation for TAU Urban Acoustic Scenes development sets.

Writes SpeechBrain CSV manifests ``train.csv``, ``valid.csv`` and
``test.csv`` with the columns ``ID, duration, wav, scene, identifier, city,
device, sample_rate, channels``: train and valid from
``evaluation_setup/fold1_train.csv`` (valid grouped by ``identifier``, so no
recording location is on both sides), test from ``fold1_evaluate.csv``.
Works for the 2019 (48 kHz, binaural), 2020 Mobile (44.1 kHz mono, several
devices) and 2022 Mobile (1-s clips, ``scene-city-location-segment-k-
device.wav``) layouts, which share ``meta.csv`` and ``evaluation_setup/``.
Every audio file is checked (readable, whole, rate, channels, length,
finite samples) and every scene of the test split must have training clips
(the labels are the training split's scenes); all the faults are reported
in one error, with the file or the fold line, before any training. Bad
audio files can instead be skipped and counted on request. A file listed
twice (in one fold file or in both) is an error, as is a fold entry that
``meta.csv`` lacks or labels with another scene.

Skips the work when the manifests exist and ``prepare_opts.json`` records
the same options and the same fingerprint of ``meta.csv`` and the fold
files; redoes it otherwise. Call it through
``speechbrain.utils.distributed.run_on_main`` in multi-process training.

About 620 lines because every check of the data (missing, unreadable,
truncated, non-finite or mislabelled clips; clips on both sides of a split)
reports in one message before training, and each has its own few lines.
"""

import csv
import hashlib
import json
import logging
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.tau_layout import read_tau_rows

logger = logging.getLogger(__name__)

FIELDS = [
    "ID",
    "duration",
    "wav",
    "scene",
    "identifier",
    "city",
    "device",
    "sample_rate",
    "channels",
]
OPTIONS_FILE = "prepare_opts.json"
# Bumped when the manifests a given set of options yields change, so that
# manifests of an older version are redone rather than reused.
FORMAT_VERSION = 3  # 3: non-finite samples and unknown scenes refused
# The only subtypes that store floating-point samples, hence the only ones
# that can hold NaN or infinity; integer and ADPCM files are never read.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
SPLITS = ("train", "valid", "test")
# The DCASE 2024 task 1 data-efficiency subsets, percent of the train split.
TRAIN_SUBSETS = (5, 10, 25, 50, 100)


def prepare_dcase2019(
    data_folder,
    save_folder,
    valid_ratio=0.1,
    seed=1234,
    skip_bad_files=False,
    sample_rate=None,
    channels=None,
    min_duration=None,
    train_subset=None,
    split_setup_folder=None,
):
    """Write ``train.csv``, ``valid.csv`` and ``test.csv`` to ``save_folder``.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        A TAU-layout development set: ``audio/``, ``meta.csv``,
        ``evaluation_setup/fold1_train.csv`` and ``fold1_evaluate.csv``.
    save_folder : str or pathlib.Path
        Where the manifests go.
    valid_ratio : float
        Share of the training clips held out for validation, drawn as whole
        locations (``identifier``).
    seed : int
        Seeds the choice of validation locations.
    skip_bad_files : bool
        False: any unreadable, cut, missing, mismatching or non-finite file
        is an error that lists them all. True: they are left out and
        counted. A test scene without training clips is an error either
        way.
    sample_rate, channels : int, optional
        When given, files with another rate or channel count are bad.
    min_duration : float, optional
        Files shorter than this (seconds) are bad.
    train_subset : int, optional
        5, 10, 25, 50 or 100: train (and validate) on the DCASE 2024 task 1
        data-efficiency subset of that percentage, the clips that
        ``split<N>.csv`` lists (the challenge's split files, tab-separated
        with a ``filename`` column); the test split stays whole. None: the
        whole train fold.
    split_setup_folder : str or pathlib.Path, optional
        Where ``split<N>.csv`` is; default ``<data_folder>/split_setup``.

    Returns
    -------
    dict
        Number of clips per split and of skipped files.

    Example
    -------
    >>> from speechbrain_kd.demo_data import generate_demo_dataset
    >>> tmp = getfixture("tmpdir")
    >>> data = generate_demo_dataset(tmp + "/data", 8, 1.0, 8000)
    >>> prepare_dcase2019(data, tmp + "/manifests", valid_ratio=0.2)
    {'train': 50, 'valid': 10, 'test': 20, 'skipped': 0}
    >>> prepare_dcase2019(data, tmp + "/subset", train_subset=25)
    Traceback (most recent call last):
    ...
    FileNotFoundError: train_subset=25 needs .../split_setup/split25.csv...
    """
    data_folder = Path(data_folder)
    save_folder = Path(save_folder)
    if not 0 <= valid_ratio < 1:
        raise ValueError(f"valid_ratio must be in [0, 1), got {valid_ratio}")
    subset_file = _subset_file(data_folder, train_subset, split_setup_folder)
    options = {
        "format_version": FORMAT_VERSION,
        "data_folder": str(data_folder.absolute()),
        "train_subset": train_subset,
        "valid_ratio": valid_ratio,
        "seed": seed,
        "skip_bad_files": skip_bad_files,
        "sample_rate": sample_rate,
        "channels": channels,
        "min_duration": min_duration,
    }
    meta_file = data_folder / "meta.csv"
    fold_files = {
        "train": data_folder / "evaluation_setup" / "fold1_train.csv",
        "test": data_folder / "evaluation_setup" / "fold1_evaluate.csv",
    }
    _check_layout(data_folder, meta_file, fold_files)
    fingerprinted = [meta_file, *fold_files.values()]
    options["fingerprint"] = _fingerprint(
        fingerprinted + ([subset_file] if subset_file else [])
    )
    previous = _read_options(save_folder)
    if (
        previous
        and previous.get("options") == options
        and _manifests_exist(save_folder)
    ):
        logger.info("%s already prepared with these options", save_folder)
        return previous["counts"]

    meta = _read_meta(meta_file)
    subset = _read_subset(subset_file) if subset_file else None
    rows, bad, seen, line_of = {}, [], {}, {}
    for split, fold_file in fold_files.items():
        rows[split] = []
        needed = ["filename", "scene_label"]
        for line, entry in read_tau_rows(fold_file, needed):
            where = f"{fold_file}, line {line}"
            name = entry["filename"]
            if name in seen:
                # A clip on both sides (or twice on one) would leak.
                raise ValueError(
                    f"{where}: {name} is listed again (first at {seen[name]})"
                )
            seen[name] = where
            if split == "train" and subset is not None and name not in subset:
                continue
            row = _manifest_row(data_folder, meta, where, entry, bad, options)
            if row is not None:
                rows[split].append(row)
                line_of[row["wav"]] = where
    if subset is not None:
        train_names = {
            entry["filename"]
            for _, entry in read_tau_rows(fold_files["train"], ["filename"])
        }
        for name, where in subset.items():
            if name not in train_names:
                raise ValueError(
                    f"{where}: {name} is not in {fold_files['train']} (a "
                    "training subset lists clips of the train fold only)"
                )
    if skip_bad_files or not bad:  # else the error below names them
        for split in rows:
            if not rows[split]:
                skipped = f" ({len(bad)} bad files left out)" if bad else ""
                raise ValueError(
                    f"{fold_files[split]} gives no {split} clip{skipped}: "
                    "every split needs clips"
                )
    rows["train"], rows["valid"] = _split_by_identifier(
        rows["train"], valid_ratio, seed
    )
    absent = _scenes_absent_from_training(rows, line_of)
    _refuse_faults(data_folder, [] if skip_bad_files else bad, absent, len(bad))
    if bad:
        logger.warning(
            "skipping %d bad audio file(s):\n  %s", len(bad), "\n  ".join(bad)
        )
    _warn_odd_formats([row for split in rows.values() for row in split])
    save_folder.mkdir(parents=True, exist_ok=True)
    # The options file vouches for the manifests: drop it first, so that a
    # run interrupted while writing them is never taken as prepared.
    (save_folder / OPTIONS_FILE).unlink(missing_ok=True)
    for split in SPLITS:
        _write_csv(save_folder / f"{split}.csv", rows[split])
    counts = {split: len(rows[split]) for split in SPLITS}
    counts["skipped"] = len(bad)
    write_json_atomic(
        save_folder / OPTIONS_FILE,
        {"options": options, "counts": counts, "bad_files": bad},
    )
    logger.info("prepared %s in %s", counts, save_folder)
    return counts


def _scenes_absent_from_training(rows, line_of):
    """``"file, line N: ..."`` for each clip whose scene training lacks.

    The label encoder is built from the training manifest: a scene only in
    the validation or test split could not be encoded (SpeechBrain's
    ``Cannot encode unknown label``) once the phase had trained.
    """
    if not rows["train"]:
        return []  # named as an empty split (or through its bad files)
    scenes = {row["scene"] for row in rows["train"]}
    return [
        f"{line_of[row['wav']]}: scene {row['scene']!r} of "
        f"{Path(row['wav']).name} has no clip in the training split"
        for split in ("valid", "test")
        for row in rows[split]
        if row["scene"] not in scenes
    ]


def _refuse_faults(data_folder, bad, absent, n_bad):
    """Raise one error that lists every bad file and every unknown scene."""
    if not bad and not absent:
        return
    counts, advice = [], []
    if bad:
        counts.append(f"{len(bad)} bad audio file(s)")
        advice.append(
            "Fix or remove the bad files, or pass skip_bad_files=True "
            "(--skip_bad_files=True) to leave them out."
        )
    if absent:
        counts.append(f"{len(absent)} clip(s) of a scene absent from training")
        skipped = f" ({n_bad} bad files left out)" if n_bad and not bad else ""
        advice.append(
            "The labels are the scenes of the training split"
            f"{skipped}: give every scene training clips or remove its "
            "evaluation lines."
        )
    # The faults last: a caller that shows one line (pipeline.py) shows one.
    raise ValueError(
        f"{' and '.join(counts)} in {data_folder}. "
        + " ".join(advice)
        + "\n  "
        + "\n  ".join(bad + absent)
    )


def _subset_file(data_folder, train_subset, split_setup_folder):
    """``split<N>.csv`` of the DCASE 2024 subsets, checked; or None."""
    if train_subset is None:
        return None
    if isinstance(train_subset, bool) or train_subset not in TRAIN_SUBSETS:
        raise ValueError(
            f"train_subset={train_subset!r}: give one of "
            f"{', '.join(map(str, TRAIN_SUBSETS))} (percent of the train "
            "split, DCASE 2024 task 1) or null for all of it"
        )
    folder = Path(split_setup_folder or Path(data_folder) / "split_setup")
    path = folder / f"split{train_subset}.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"train_subset={train_subset} needs {path}: put the DCASE 2024 "
            "task 1 split files (split5.csv ... split100.csv, from the "
            "challenge's baseline release) there, or set split_setup_folder"
        )
    return path


def _read_subset(path):
    """``{filename: "file, line N"}`` of a subset file."""
    names = {}
    for line, entry in read_tau_rows(path, ["filename"]):
        where = f"{path}, line {line}"
        if entry["filename"] in names:
            raise ValueError(
                f"{where}: {entry['filename']} is listed again (first at "
                f"{names[entry['filename']]})"
            )
        names[entry["filename"]] = where
    if not names:
        raise ValueError(f"{path} lists no clip")
    return names


def _warn_odd_formats(rows):
    """Name the files whose rate or channel count differ from most files.

    They still work (phases resample and adapt channels), but in a set
    recorded one way they are usually a mistake worth seeing.
    """
    for key, unit in (("sample_rate", "Hz"), ("channels", "channel(s)")):
        counts = {}
        for row in rows:
            counts.setdefault(row[key], []).append(row["wav"])
        if len(counts) < 2:
            continue
        common = max(counts, key=lambda value: len(counts[value]))
        odd = [
            f"{path} ({value} {unit})"
            for value, paths in sorted(counts.items())
            if value != common
            for path in paths
        ]
        logger.warning(
            "%d file(s) differ from the %d %s of the others (resampled or "
            "adapted when read):\n  %s",
            len(odd),
            common,
            unit,
            "\n  ".join(odd[:20]) + ("\n  ..." if len(odd) > 20 else ""),
        )


def _check_layout(data_folder, meta_file, fold_files):
    if not data_folder.is_dir():
        raise FileNotFoundError(
            f"data folder {data_folder} does not exist (set --data_folder "
            "to a TAU development set or the demo set)"
        )
    for path in (meta_file, *fold_files.values()):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: {data_folder} is not a TAU-layout "
                "development set (audio/, meta.csv, evaluation_setup/)"
            )


def _fingerprint(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_options(save_folder):
    path = save_folder / OPTIONS_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def training_scenes(data_folder):
    """The scenes of the training fold file, read before anything is written.

    Lets a phase refuse a setting that names a scene the data lacks (a
    specialist's ``target_pair``) before it creates its folder. Returns
    None when the fold file is absent: data preparation names that error.

    Arguments
    ---------
    data_folder : str or Path
        The TAU-layout folder.

    Returns
    -------
    set of str, or None

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> (folder / "evaluation_setup").mkdir()
    >>> fold = folder / "evaluation_setup" / "fold1_train.csv"
    >>> _ = fold.write_text(
    ...     "filename\\tscene_label\\n"
    ...     "audio/a.wav\\tpark\\naudio/b.wav\\ttram\\n"
    ... )
    >>> sorted(training_scenes(folder))
    ['park', 'tram']
    >>> training_scenes(folder / "elsewhere") is None
    True
    """
    fold_file = Path(data_folder) / "evaluation_setup" / "fold1_train.csv"
    if not fold_file.is_file():
        return None
    return {
        entry["scene_label"]
        for _, entry in read_tau_rows(fold_file, ["filename", "scene_label"])
    }


def prepare_from_settings(settings):
    """:func:`prepare_dcase2019` with a phase's settings.

    The ``prepare`` of the scene recipe's phase
    (:class:`speechbrain_kd.phase.PhaseTask`): writes the manifests into
    ``settings["prepare_folder"]``.

    Arguments
    ---------
    settings : dict
        A phase's plain settings (``data_folder``, ``prepare_folder``,
        ``valid_ratio``, ``seed``, ``skip_bad_files``, ``train_subset``,
        ``split_setup_folder``).

    Example
    -------
    >>> prepare_from_settings({"data_folder": getfixture("tmpdir")})
    Traceback (most recent call last):
    ...
    KeyError: 'prepare_folder'
    """
    prepare_dcase2019(
        data_folder=settings["data_folder"],
        save_folder=settings["prepare_folder"],
        valid_ratio=settings["valid_ratio"],
        seed=settings["seed"],
        skip_bad_files=settings["skip_bad_files"],
        train_subset=settings["train_subset"],
        split_setup_folder=settings["split_setup_folder"],
    )


def settings_scenes(settings):
    """:func:`training_scenes` of a phase's ``data_folder`` (or None).

    Example
    -------
    >>> settings_scenes({"data_folder": getfixture("tmpdir")}) is None
    True
    """
    return training_scenes(settings["data_folder"])


def _manifests_exist(save_folder):
    return all((save_folder / f"{split}.csv").is_file() for split in SPLITS)


def _read_meta(meta_file):
    meta = {}
    needed = ["filename", "scene_label", "identifier", "source_label"]
    for line, row in read_tau_rows(meta_file, needed):
        empty = [c for c in needed if not (row.get(c) or "").strip()]
        if empty:
            raise ValueError(
                f"{meta_file}, line {line}: empty {empty} (is the file "
                "tab-separated?)"
            )
        meta[row["filename"]] = row
    return meta


def _manifest_row(data_folder, meta, where, entry, bad, options):
    """One manifest row, or None (with the fault appended to ``bad``)."""
    name = entry["filename"]
    if name not in meta:
        raise ValueError(
            f"{where}: {name} is not listed in {data_folder / 'meta.csv'}"
        )
    info = meta[name]
    if entry["scene_label"] != info["scene_label"]:
        raise ValueError(
            f"{where}: scene {entry['scene_label']!r} of {name} differs "
            f"from {info['scene_label']!r} in meta.csv"
        )
    path = (data_folder / name).absolute()
    audio, fault = _probe_audio(path, options)
    if fault:
        bad.append(f"{path}: {fault}")
        return None
    identifier = info["identifier"]
    return {
        "ID": Path(name).stem,
        "duration": f"{audio.frames / audio.samplerate:.4f}",
        "wav": str(path),
        "scene": info["scene_label"],
        "identifier": identifier,
        "city": identifier.split("-")[0],
        "device": info["source_label"],
        "sample_rate": audio.samplerate,
        "channels": audio.channels,
    }


def _probe_audio(path, options):
    """``(soundfile info, None)``, or ``(None, what is wrong)``."""
    if not path.is_file():
        return None, "missing"
    try:
        audio = soundfile.info(str(path))
    except Exception as error:  # reported with the file, never swallowed
        return None, f"unreadable ({error})"
    if audio.frames <= 0:
        return None, "empty"
    # libsndfile reads what is there of a cut file; its header says more.
    cut = re.search(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)", audio.extra_info)
    if cut and int(cut.group(1)) > int(cut.group(2)):
        return None, (
            f"truncated (its header announces {cut.group(1)} bytes of audio, "
            f"the file holds {cut.group(2)})"
        )
    rate, channels = options["sample_rate"], options["channels"]
    if rate is not None and audio.samplerate != rate:
        return None, f"sample rate {audio.samplerate} Hz, expected {rate} Hz"
    if channels is not None and audio.channels != channels:
        return None, f"{audio.channels} channel(s), expected {channels}"
    min_duration = options["min_duration"]
    seconds = audio.frames / audio.samplerate
    if min_duration and seconds < min_duration:
        return None, f"{seconds:.2f} s long, shorter than {min_duration} s"
    if audio.subtype in FLOAT_SUBTYPES:
        return audio, _nonfinite_samples(path, audio.samplerate, audio.subtype)
    return audio, None


def _nonfinite_samples(path, rate, subtype):
    """What is wrong with the NaN or infinite samples of a file, or None.

    Read in blocks of a few seconds, so that a long file needs little
    memory (``SoundFile.read`` in a loop: ``soundfile.blocks`` is slower).
    """
    dtype = "float32" if subtype == "FLOAT" else "float64"  # as stored
    first, count, offset = None, 0, 0
    with soundfile.SoundFile(str(path)) as sound:
        while len(block := sound.read(1 << 18, dtype, always_2d=True)):
            finite = np.isfinite(block)
            # The whole-block test is fast; frames are counted when it fails.
            bad = (
                np.flatnonzero(~finite.all(axis=1)) if not finite.all() else []
            )
            if len(bad) and first is None:
                first = offset + int(bad[0])
            count += len(bad)
            offset += len(block)
    if first is None:
        return None
    return (
        f"{count} frame(s) of NaN or infinite samples, the first at "
        f"{first / rate:.3f} s"
    )


def _split_by_identifier(rows, valid_ratio, seed):
    """Hold out whole locations, about ``valid_ratio`` of the clips.

    Locations are drawn scene by scene (in a seeded random order): one is
    taken when it brings the scene's held-out count nearer its share; a
    scene that would get none gets its smallest location, so that every
    scene with at least two locations is on both sides. A location is held
    out everywhere it occurs, and every scene keeps one for training.
    """
    by_scene = {}
    for row in rows:
        by_scene.setdefault(row["scene"], {}).setdefault(
            row["identifier"], []
        ).append(row)
    rng = random.Random(seed)
    held_out = set()
    for scene in sorted(by_scene):
        locations = by_scene[scene]
        names = sorted(locations)
        rng.shuffle(names)
        target = valid_ratio * sum(len(v) for v in locations.values())
        taken = sum(len(locations[n]) for n in names if n in held_out)
        free = [n for n in names if n not in held_out]
        chosen = []
        for name in free[:-1]:  # always leave one location for training
            size = len(locations[name])
            if abs(taken + size - target) < abs(taken - target):
                chosen.append(name)
                taken += size
        if valid_ratio > 0 and taken == 0 and len(free) > 1:
            chosen.append(min(free, key=lambda n: len(locations[n])))
        held_out.update(chosen)
    # Grouped by identifier: a location is on one side only.
    train = [r for r in rows if r["identifier"] not in held_out]
    valid = [r for r in rows if r["identifier"] in held_out]
    return train, valid


def _write_csv(path, rows):
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
