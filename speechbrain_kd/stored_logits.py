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
inference folder or a hub id; see :func:`speechbrain_kd.teachers.
teacher_kind`) over the clips of a manifest and writes its outputs (the
whole clip, in the teacher's own label order). ``import`` reads outputs
computed elsewhere, an ``.npz`` as above or a folder of per-file arrays
``<key>.npy`` with ``labels.txt`` (one label per line) beside them, checks
them against a manifest and writes an ``.npz`` keyed by clip ID, which
``teacher_folders`` takes as a teacher (``soft_label_mode: cached``; every
crop view gets the whole clip's logits). Clips are matched by key, never by
position: a clip without logits is an error naming it, and so is a file
without its label order; labels are matched to the student's by name.
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from speechbrain_kd.dataio import read_manifest
from speechbrain_kd.files import replacing
from speechbrain_kd.soft_labels import file_sha256

logger = logging.getLogger(__name__)

LABELS_KEY = "__labels__"
LABELS_FILE = "labels.txt"
KEYS = ("id", "file")


def read_stored_logits(source):
    """The arrays and the label order of an ``.npz`` or a folder of ``.npy``.

    Arguments
    ---------
    source : str or pathlib.Path
        An ``.npz`` (label order in ``__labels__``), or a folder of
        ``<key>.npy`` files (label order in ``labels.txt``, if any).

    Returns
    -------
    arrays : dict of str -> numpy.ndarray
    labels : list of str or None
        None when the source does not store its label order.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/t.npz"
    >>> write_stored_logits(path, {"c1": [1.0, 2.0]}, ["a", "b"])
    >>> arrays, labels = read_stored_logits(path)
    >>> arrays["c1"].tolist(), labels
    ([1.0, 2.0], ['a', 'b'])
    """
    source = Path(source)
    if source.is_dir():
        arrays = {
            path.name[: -len(".npy")]: np.load(path, allow_pickle=False)
            for path in sorted(source.glob("*.npy"))
        }
        if not arrays:
            raise FileNotFoundError(f"{source} holds no .npy arrays")
        labels_file = source / LABELS_FILE
        labels = None
        if labels_file.is_file():
            labels = read_labels(labels_file)
        return arrays, labels
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    try:
        with np.load(source, allow_pickle=False) as content:
            arrays = {key: content[key] for key in content.files}
    except Exception as error:  # not a zip of plain arrays: say so
        raise ValueError(
            f"{source} is not an .npz of plain arrays ({error})"
        ) from None
    labels = arrays.pop(LABELS_KEY, None)
    return arrays, None if labels is None else [str(x) for x in labels]


def read_labels(path):
    """One label per line of a text file (blank lines ignored).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/labels.txt"
    >>> _ = open(path, "w").write("bus\\npark\\n")
    >>> read_labels(path)
    ['bus', 'park']
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


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


def missing_message(wanted, held, source, where):
    """Why ``held`` keys do not cover ``wanted`` (None when they do).

    Names the first missing keys and the first keys of the source that
    ``where`` does not have, so that another naming shows at once.

    Example
    -------
    >>> missing_message(["a", "b"], ["a.wav", "b.wav"], "t.npz", "m.csv")
    "t.npz has no logits for 2 of the 2 clips of m.csv, e.g. ['a', 'b']; ..."
    """
    held = set(held)
    missing = [key for key in wanted if key not in held]
    if not missing:
        return None
    wanted = set(wanted)
    other = sorted(key for key in held if key not in wanted)
    return (
        f"{source} has no logits for {len(missing)} of the {len(wanted)} "
        f"clips of {where}, e.g. {missing[:5]}; keys it holds that {where} "
        f"lacks: {other[:5]} (clips are matched by clip ID, or with --key "
        "file by audio file name, never by position)"
    )


def _matrix(arrays, keys, labels, source):
    rows = []
    for key in keys:
        values = np.asarray(arrays[key], dtype=np.float32)
        if values.size == len(labels) and values.ndim == 2:
            values = values.reshape(-1)  # [1, C]: one clip, one row
        if values.shape != (len(labels),):
            raise ValueError(
                f"{source}: logits of {key!r} have shape {values.shape}, "
                f"not ({len(labels)},) (one value per label of {labels})"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"{source}: logits of {key!r} are not finite")
        rows.append(values)
    return np.stack(rows)


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
    matrix = _matrix(arrays, list(keys.values()), labels, source)
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
    from speechbrain_kd.soft_labels import compute_teacher_logits
    from speechbrain_kd.teachers import TeacherEnsemble, load_teacher

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


class StoredLogitsTeacher(torch.nn.Module):
    """Stored logits (an ``.npz`` keyed by clip ID) as a teacher module.

    Looked up by clip ID, whatever the waveform: the ensemble passes the
    IDs (``needs_ids``) and :meth:`check_clips` refuses a manifest with
    clips the file lacks before anything runs.

    Arguments
    ---------
    path : str or pathlib.Path

    Example
    -------
    >>> path = getfixture("tmpdir") + "/t.npz"
    >>> write_stored_logits(path, {"c1": [1.0, 2.0], "c2": [3.0, 4.0]},
    ...                     ["a", "b"])
    >>> teacher = StoredLogitsTeacher(path)
    >>> teacher(torch.zeros(2, 10), ids=["c2", "c1"])
    tensor([[3., 4.],
            [1., 2.]])
    >>> teacher.check_clips(["c1", "c3"], "m.csv", "teacher 't'")
    Traceback (most recent call last):
    ...
    ValueError: teacher 't': ...t.npz has no logits for 1 of the 2 clips ...
    """

    needs_ids = True
    sample_rate = None  # any: the waveform is not used
    checkpoint = None

    def __init__(self, path):
        super().__init__()
        self.path = str(path)
        arrays, labels = read_stored_logits(path)
        if labels is None:
            raise ValueError(
                f"{path} does not store its label order ({LABELS_KEY}): "
                "write it with python -m speechbrain_kd.stored_logits "
                "import ... --labels LABELS_TXT"
            )
        self.labels = labels
        self.ids = list(arrays)
        self.index = {clip_id: row for row, clip_id in enumerate(self.ids)}
        matrix = _matrix(arrays, self.ids, labels, path)
        self.register_buffer("logits", torch.from_numpy(matrix))
        self.spec = {"kind": "stored", "labels": labels}
        self.digest = file_sha256(path)

    def check_clips(self, ids, where, who):
        """Raise ``ValueError`` naming clips of ``where`` without logits."""
        problem = missing_message(ids, self.index, self.path, where)
        if problem:
            raise ValueError(f"{who}: {problem}")

    def forward(self, wavs, lengths=None, ids=None):
        """The logits ``[B, C]`` of clips ``ids``, on ``wavs``' device."""
        if ids is None:
            raise ValueError(
                f"stored logits {self.path} are looked up by clip ID: use "
                "soft_label_mode 'cached'"
            )
        self.check_clips(list(ids), "the batch", "stored logits")
        rows = torch.tensor([self.index[i] for i in ids])
        return self.logits[rows.to(self.logits.device)].to(wavs.device)


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
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        sys.exit(f"error: {error}")
