"""Manifests: the SpeechBrain CSVs that list a phase's clips.

:func:`read_manifest` maps clip IDs to audio files; :func:`manifest_at_rate`
gives a phase a manifest whose clips are at its sample rate, resampling
each clip once into a folder of copies.
"""

import csv
import io
import json
import os
from pathlib import Path

import soundfile

from speechbrain_kd.audio import _check_sample_rate, load_audio
from speechbrain_kd.files import replacing, write_text_atomic


def read_manifest(manifest_csv):
    """``{ID: wav path}`` of a SpeechBrain CSV manifest.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/m.csv"
    >>> _ = open(path, "w").write("ID,wav\\nc1,/a.wav\\n")
    >>> read_manifest(path)
    {'c1': '/a.wav'}
    """
    with open(manifest_csv, newline="", encoding="utf-8") as f:
        return {row["ID"]: row["wav"] for row in csv.DictReader(f)}


def manifest_at_rate(manifest_csv, sample_rate, folder):
    """The manifest with every clip at ``sample_rate``, resampled once.

    A phase whose rate differs from the recordings' (the demo preset's
    16 kHz on 48 kHz TAU files) would otherwise read each whole file and
    resample it at every step. Each clip whose ``sample_rate`` column
    differs is resampled once (:func:`load_audio`, so bit for bit what the
    phase would compute) into ``folder/<ID>.wav`` (32-bit float, the same
    channels as the source), and a copy of the manifest pointing at them is
    written to ``folder/<manifest name>``. A copy is remade when its
    source's path, size or modification time changed (kept in
    ``folder/sources.json``); files and manifest are written whole or not
    at all. When every clip is already at the rate, the manifest itself is
    returned and nothing is written.

    Arguments
    ---------
    manifest_csv : str or pathlib.Path
        A manifest with the columns ``ID``, ``wav`` and ``sample_rate``.
    sample_rate : int
        The phase's rate.
    folder : str or pathlib.Path
        Where the copies go (one folder per rate).

    Returns
    -------
    pathlib.Path
        The manifest to read.

    Example
    -------
    >>> import soundfile
    >>> import torch
    >>> tmp = str(getfixture("tmpdir"))
    >>> soundfile.write(tmp + "/c.wav", torch.ones(800).numpy() / 2, 8000)
    >>> _ = open(tmp + "/m.csv", "w").write(
    ...     "ID,wav,sample_rate\\nc," + tmp + "/c.wav,8000\\n")
    >>> manifest_at_rate(tmp + "/m.csv", 8000, tmp + "/r") == Path(
    ...     tmp + "/m.csv")
    True
    >>> copy = manifest_at_rate(tmp + "/m.csv", 4000, tmp + "/r4000")
    >>> row = next(csv.DictReader(open(copy)))
    >>> row["sample_rate"], soundfile.info(row["wav"]).samplerate
    ('4000', 4000)
    """
    manifest_csv, folder = Path(manifest_csv), Path(folder)
    _check_sample_rate(sample_rate)
    with open(manifest_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    missing = [c for c in ("ID", "wav", "sample_rate") if c not in fields]
    if missing:
        raise ValueError(f"{manifest_csv} lacks the column(s) {missing}")
    to_resample = [
        row for row in rows if int(row["sample_rate"]) != sample_rate
    ]
    if not to_resample:
        return manifest_csv
    folder.mkdir(parents=True, exist_ok=True)
    sources_json = folder / "sources.json"
    try:
        sources = json.loads(sources_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sources = {}
    out = folder / manifest_csv.name
    changed = not out.is_file()
    for row in to_resample:
        source, copy = row["wav"], folder / f"{row['ID']}.wav"
        stamp = file_stamp(source, manifest_csv, row["ID"])
        if sources.get(row["ID"]) != stamp or not copy.is_file():
            changed = True
            wav = load_audio(source, sample_rate, _file_channels(source))
            with replacing(copy) as tmp:
                soundfile.write(
                    tmp, wav.numpy(), sample_rate, "FLOAT", format="WAV"
                )
            sources[row["ID"]] = stamp
        row["wav"], row["sample_rate"] = str(copy), str(sample_rate)
    text = _csv_text(fields, rows)
    if not changed:  # the manifest's other columns may have changed
        with open(out, newline="", encoding="utf-8") as f:
            changed = f.read() != text
    if changed:
        write_text_atomic(sources_json, json.dumps(sources, indent=1))
        write_text_atomic(out, text)
    return out


def _csv_text(fields, rows):
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def file_stamp(path, manifest_csv, clip_id):
    """A cheap stamp of a manifest's audio file: path, size, mtime.

    Reading every file at every check would cost as much as an epoch; a
    file rewritten, replaced or touched changes its stamp.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/a.wav"
    >>> _ = open(path, "wb").write(b"RIFF")
    >>> file_stamp(path, "m.csv", "a")[1]
    4
    >>> file_stamp(path + "x", "m.csv", "a")
    Traceback (most recent call last):
    ...
    FileNotFoundError: m.csv: audio file ...a.wavx of clip a cannot be read: ...
    """
    try:
        stat = os.stat(path)
    except OSError as error:
        raise FileNotFoundError(
            f"{manifest_csv}: audio file {path} of clip {clip_id} cannot be "
            f"read: {error}"
        ) from error
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _file_channels(path):
    try:
        return soundfile.info(str(path)).channels
    except Exception as error:
        raise RuntimeError(f"cannot read audio file {path}: {error}") from error
