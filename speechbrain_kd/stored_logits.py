"""Teacher logits stored per clip, in and out, in a portable file.

    python -m speechbrain_kd.stored_logits export TEACHER MANIFEST_CSV OUT.npz
    python -m speechbrain_kd.stored_logits import SOURCE MANIFEST_CSV OUT.npz \
        [--labels LABELS_TXT] [--key id|file]

Teachers computed elsewhere teach here, and ours elsewhere, through one
format: an ``.npz`` (NumPy's zip of arrays, read with
``numpy.load(path, allow_pickle=False)``, no pickled code) holding

- one float array of shape ``[C]`` per clip, named by the clip ID (the
  manifest's ``ID``), or with ``--key file`` by the name of the clip's audio
  file (``bus-lyon-1001-40001-a.wav``), the per-file mapping CP-JKU's and
  CED's stored teacher outputs use;
- ``__labels__``: the ``C`` label names, in the order of every array.

The values are the teacher's logits, or its log-posteriors (the same up to a
constant per clip, which softmax and KD do not see).

``export`` runs any teacher of ``teacher_folders`` (a phase folder, an
inference folder or a hub id; see
:func:`speechbrain_kd.teacher_sources.teacher_kind`) over the clips of a
manifest and writes its outputs (the whole clip, in the teacher's own label
order). ``import`` reads outputs
computed elsewhere, an ``.npz`` as above or a folder of per-file arrays
``<key>.npy`` with ``labels.txt`` (one label per line) beside them, checks
them against a manifest and writes an ``.npz`` keyed by clip ID, which
``teacher_folders`` takes as a teacher (``soft_label_mode: cached``; every
crop view gets the whole clip's logits). Clips are matched by key, never by
position: a clip without logits is an error naming it, and so is a file
without its label order; labels are matched to the student's by name.
Reading the format, and the teacher, are in
:mod:`speechbrain_kd.teacher_sources`
(:class:`~speechbrain_kd.teacher_sources.StoredLogitsTeacher`).
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from speechbrain_kd.environment import run_command
from speechbrain_kd.files import replacing
from speechbrain_kd.manifests import read_manifest
from speechbrain_kd.soft_label_cache import compute_teacher_logits
from speechbrain_kd.teacher_sources import (
    LABELS_FILE,
    LABELS_KEY,
    load_teacher,
    logits_matrix,
    missing_message,
    read_labels,
    read_stored_logits,
)
from speechbrain_kd.teachers import TeacherEnsemble

logger = logging.getLogger(__name__)

KEYS = ("id", "file")


def write_stored_logits(path, logits, labels):
    """Write ``{key: [C] logits}`` and the label order as an ``.npz``.

    Written whole or not at all (:func:`speechbrain_kd.files.replacing`).

    Arguments
    ---------
    path : str or pathlib.Path
    logits : dict of str -> array-like
        One ``[C]`` array per clip key.
    labels : list of str
        The ``C`` label names.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/t.npz"
    >>> write_stored_logits(path, {"c1": [1.0]}, ["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: logits of 'c1' have shape (1,), not (2,): one value per ...
    """
    labels = [str(label) for label in labels]
    arrays = {}
    for key, values in logits.items():
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(labels),):
            raise ValueError(
                f"logits of {key!r} have shape {values.shape}, not "
                f"({len(labels)},): one value per label of {labels}"
            )
        arrays[str(key)] = values
    if LABELS_KEY in arrays:
        raise ValueError(f"{LABELS_KEY!r} is reserved for the label order")
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, **{LABELS_KEY: np.array(labels)})


def clip_keys(manifest_csv, key="id"):
    """The key each clip of a manifest has in stored logits.

    Arguments
    ---------
    manifest_csv : str or pathlib.Path
        SpeechBrain CSV with ``ID`` and ``wav``.
    key : str
        ``"id"``: the clip ID; ``"file"``: the audio file's name.

    Returns
    -------
    dict of str -> str
        Clip ID -> key.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/m.csv"
    >>> _ = open(path, "w").write("ID,wav\\nc1,/data/audio/c1.wav\\n")
    >>> clip_keys(path, "file")
    {'c1': 'c1.wav'}
    """
    if key not in KEYS:
        raise ValueError(f"key must be one of {KEYS}, not {key!r}")
    clips = read_manifest(manifest_csv)
    if key == "id":
        return {clip_id: clip_id for clip_id in clips}
    keys = {clip_id: Path(wav).name for clip_id, wav in clips.items()}
    seen = {}
    for clip_id, name in keys.items():
        if name in seen:
            raise ValueError(
                f"{manifest_csv}: clips {seen[name]!r} and {clip_id!r} have "
                f"audio files of the same name {name!r}: key by clip ID"
            )
        seen[name] = clip_id
    return keys


def import_logits(source, manifest_csv, out, labels=None, key="id"):
    """Check logits computed elsewhere against a manifest; write our file.

    Arguments
    ---------
    source : str or pathlib.Path
        An ``.npz`` or a folder of ``<key>.npy`` (see the module).
    manifest_csv : str or pathlib.Path
        The clips the teacher must cover (the student's training set).
    out : str or pathlib.Path
        The ``.npz`` to write, keyed by clip ID, with the label order.
    labels : list of str, optional
        The label order of the source's arrays, when it stores none (a
        stored order that differs is an error).
    key : str
        ``"id"`` or ``"file"`` (see :func:`clip_keys`).

    Returns
    -------
    int
        The number of clips written.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> _ = open(tmp + "/m.csv", "w").write("ID,wav\\nc1,/a/c1.wav\\n")
    >>> write_stored_logits(tmp + "/in.npz", {"c1.wav": [0.0, 1.0]},
    ...                     ["a", "b"])
    >>> import_logits(tmp + "/in.npz", tmp + "/m.csv", tmp + "/out.npz",
    ...               key="file")
    1
    >>> import_logits(tmp + "/in.npz", tmp + "/m.csv", tmp + "/out.npz",
    ...               labels=["b", "a"])
    Traceback (most recent call last):
    ...
    ValueError: ...in.npz stores the label order ['a', 'b'] but ['b', 'a'] ...
    """
    arrays, stored = read_stored_logits(source)
    if labels is not None and stored is not None and stored != labels:
        raise ValueError(
            f"{source} stores the label order {stored} but {labels} was "
            "given: outputs are never aligned by position, drop --labels "
            "or fix the source"
        )
    labels = stored if labels is None else [str(x) for x in labels]
    if labels is None:
        raise ValueError(
            f"{source} does not store its label order ({LABELS_KEY} in an "
            f".npz, {LABELS_FILE} in a folder): give it with --labels"
        )
    keys = clip_keys(manifest_csv, key)
    problem = missing_message(list(keys.values()), arrays, source, manifest_csv)
    if problem:
        raise ValueError(problem)
    matrix = logits_matrix(arrays, list(keys.values()), labels, source)
    write_stored_logits(out, dict(zip(keys, matrix, strict=True)), labels)
    logger.info("Imported %d clips from %s into %s", len(keys), source, out)
    return len(keys)


def export_logits(
    teacher, manifest_csv, out, key="id", channels=2, batch_size=8,
    device="cpu",
):  # fmt: skip
    """Run one teacher over a manifest's clips and store its logits.

    Arguments
    ---------
    teacher : str or pathlib.Path
        A phase folder, an inference folder or a hub id.
    manifest_csv : str or pathlib.Path
    out : str or pathlib.Path
        The ``.npz`` to write (the teacher's own label order).
    key : str
        ``"id"`` or ``"file"`` (see :func:`clip_keys`).
    channels : int
        The channels the clips are read with (the teacher adapts them).
    batch_size : int
    device : str

    Returns
    -------
    int
        The number of clips written.

    Example
    -------
    >>> export_logits(getfixture("tmpdir"), "m.csv", "out.npz")
    Traceback (most recent call last):
    ...
    FileNotFoundError: teacher ... is neither a phase output folder ...
    """

    member = load_teacher(teacher, device=device)
    if member.needs_ids:
        raise ValueError(f"{teacher} already is stored logits")
    keys = clip_keys(manifest_csv, key)
    ensemble = TeacherEnsemble({"teacher": member}, {"teacher": str(teacher)})
    logits = compute_teacher_logits(
        ensemble,
        manifest_csv,
        ensemble.sample_rate,
        channels,
        batch_size=batch_size,
        device=device,
    )[:, 0, 0]  # the whole clip, the one teacher
    write_stored_logits(
        out, dict(zip(keys.values(), logits.numpy(), strict=True)),
        ensemble.labels,
    )  # fmt: skip
    logger.info("Exported %d clips of %s to %s", len(keys), teacher, out)
    return len(keys)


def main(argv=None):
    """Command-line entry point (see the module docstring).

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> main(["import", tmp + "/none.npz", tmp + "/m.csv", tmp + "/o.npz"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...none.npz does not exist
    """
    parser = argparse.ArgumentParser(
        description="Store a teacher's logits per clip, or import logits "
        "computed elsewhere (see the module's documentation)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export", help="run a teacher over a manifest and store its logits"
    )
    export.add_argument(
        "teacher", help="phase folder, inference folder, hub id"
    )
    export.add_argument("manifest_csv")
    export.add_argument("out", help="the .npz to write")
    export.add_argument("--channels", type=int, default=2)
    export.add_argument("--batch_size", type=int, default=8)
    export.add_argument("--device", default="cpu")
    imported = commands.add_parser(
        "import", help="check logits computed elsewhere, write an .npz"
    )
    imported.add_argument("source", help=".npz or folder of <key>.npy")
    imported.add_argument("manifest_csv")
    imported.add_argument("out", help="the .npz to write")
    imported.add_argument(
        "--labels",
        default=None,
        help=f"label order, one per line ({LABELS_FILE})",
    )
    for command in (export, imported):
        command.add_argument(
            "--key", choices=KEYS, default="id",
            help="clips are keyed by clip ID or by audio file name",
        )  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "export":
        n = export_logits(
            args.teacher, args.manifest_csv, args.out, args.key,
            args.channels, args.batch_size, args.device,
        )  # fmt: skip
    else:
        labels = read_labels(args.labels) if args.labels else None
        n = import_logits(
            args.source, args.manifest_csv, args.out, labels, args.key
        )
    print(f"wrote the logits of {n} clips to {args.out}")
    return 0


if __name__ == "__main__":
    run_command(main, (FileNotFoundError, ValueError, RuntimeError))
