"""Where a teacher comes from: phase folders, exports, hub ids, stored logits.

A teacher (an entry of a recipe's ``teacher_folders``) is any of:

=============  ===========================================================
kind           what it is
=============  ===========================================================
phase          the output folder of a training phase of this project
               (``save/model_spec.json``; its best checkpoint)
inference      a folder SpeechBrain's ``EncoderClassifier.from_hparams``
               loads (``hyperparams.yaml`` + checkpoints + label
               encoder), such as ``python -m speechbrain_kd.export`` makes
hub            ``owner/name`` on the Hugging Face Hub, fetched by
               SpeechBrain (read from the local cache when offline)
stored         teacher logits per clip ID computed elsewhere, an ``.npz``
               of :mod:`speechbrain_kd.stored_logits`
=============  ===========================================================

Each loads as one frozen module with its labels, its sample rate and a
digest of what it computes with; :mod:`speechbrain_kd.teachers` puts them
in one ensemble. The four kinds stay in one module (about 600 lines):
:func:`teacher_kind` and :func:`load_teacher` choose among all of them, and
they share one interface.
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from speechbrain_kd.audio import batch_of_channels
from speechbrain_kd.checkpoints import (
    MODEL_MODULES,
    MODEL_SPEC_FILE,
    load_trained_model,
    save_folder_of,
)
from speechbrain_kd.files import file_sha256

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Stored logits: the array of the label order, and its text file.
LABELS_KEY = "__labels__"
LABELS_FILE = "labels.txt"
# What each kind of teacher source is recognised by (named in errors).
LOOKED_FOR = (
    f"a phase output folder (save/{MODEL_SPEC_FILE}), an inference folder "
    f"(hyperparams.yaml), stored logits (.npz) or a hub id (owner/name)"
)


class TeacherError(ValueError):
    """Teachers that cannot teach this student: the message names them.

    Labels that do not match, stored logits without their label order or
    without some clips, rates that cannot mix. A recipe shows it as one
    line.

    Example
    -------
    >>> issubclass(TeacherError, ValueError)
    True
    """


def teacher_kind(source, fetch=False):
    """What kind of teacher ``source`` names, checked without loading it.

    ``"phase"``: the output folder of a training phase of this project
    (``save/model_spec.json``). ``"inference"``: a folder that SpeechBrain's
    ``EncoderClassifier.from_hparams`` loads (``hyperparams.yaml``), such as
    an export of this project (:mod:`speechbrain_kd.export`).
    ``"stored"``: teacher logits per clip ID in an ``.npz`` file (written
    by :mod:`speechbrain_kd.stored_logits`). ``"hub"``: ``owner/name``
    that is not a local path: a Hugging Face model fetched by SpeechBrain.

    Arguments
    ---------
    source : str or pathlib.Path
    fetch : bool
        For a hub id, also fetch its ``hyperparams.yaml`` (or find it in the
        local cache when the hub cannot be reached): a recipe checks this
        before it writes anything.

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        A path that is none of these, saying what was looked for; a hub
        id neither cached nor reachable (with ``fetch``).

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> teacher_kind("speechbrain/urbansound8k_ecapa")
    'hub'
    >>> _ = (tmp / "hyperparams.yaml").write("modules: {}")
    >>> teacher_kind(tmp)
    'inference'
    >>> teacher_kind(tmp / "nowhere")
    Traceback (most recent call last):
    ...
    FileNotFoundError: teacher .../nowhere does not exist: looked for ...
    """
    path = Path(source)
    if path.is_dir():
        if (save_folder_of(path) / MODEL_SPEC_FILE).is_file():
            return "phase"
        if (path / "hyperparams.yaml").is_file():
            return "inference"
        raise FileNotFoundError(
            f"teacher {source} is neither a phase output folder (no "
            f"save/{MODEL_SPEC_FILE}) nor an inference folder (no "
            "hyperparams.yaml)"
        )
    if path.is_file():
        if path.suffix == ".npz":
            return "stored"
        raise FileNotFoundError(
            f"teacher {source} is a file but not stored logits (.npz): "
            f"looked for {LOOKED_FOR}"
        )
    if HUB_ID.fullmatch(str(source)):
        if fetch:
            fetch_hub_hyperparams(source)
        return "hub"
    raise FileNotFoundError(
        f"teacher {source} does not exist: looked for {LOOKED_FOR}"
    )


def load_teacher(source, device="cpu"):
    """Load one frozen teacher of any kind (see :func:`teacher_kind`).

    Arguments
    ---------
    source : str or pathlib.Path
    device : str or torch.device

    Returns
    -------
    torch.nn.Module
        With ``labels``, ``sample_rate`` (None: any rate), ``spec``,
        ``digest`` (SHA-256 of what it computes with), ``checkpoint`` and
        ``needs_ids``; called as ``teacher(wavs, lengths, ids)``, it returns
        outputs ``[B, len(labels)]``.

    Example
    -------
    >>> load_teacher(getfixture("tmpdir"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: teacher ... is neither a phase output folder ...
    """
    kind = teacher_kind(source)
    if kind == "phase":
        return PhaseTeacher(load_trained_model(source, device=device))
    if kind == "stored":
        return StoredLogitsTeacher(source).to(device)
    return EncoderClassifierTeacher.from_source(source, device=device)


class PhaseTeacher(torch.nn.Module):
    """A trained phase (or a model in memory) as a teacher module.

    Arguments
    ---------
    model : speechbrain_kd.checkpoints.TrainedModel

    Example
    -------
    >>> class Mean(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return wavs.mean(1)
    >>> from speechbrain_kd.checkpoints import TrainedModel
    >>> teacher = PhaseTeacher(TrainedModel(
    ...     Mean(), torch.nn.Linear(2, 3), list("abc"), 8000, {}, None))
    >>> teacher(torch.ones(4, 100, 2)).shape, teacher.labels
    (torch.Size([4, 3]), ['a', 'b', 'c'])
    """

    needs_ids = False

    def __init__(self, model):
        super().__init__()
        self.embedding_model = model.embedding_model
        self.classifier = model.classifier
        self.labels = list(model.labels)
        self.sample_rate = int(model.sample_rate)
        self.spec = model.spec
        self.checkpoint = (
            None if model.checkpoint is None else Path(model.checkpoint)
        )
        # Digest the weights now: the fingerprint must describe the weights
        # held in memory, even if a checkpoint file is replaced later.
        self.digest = _weights_digest(model)

    def forward(self, wavs, lengths=None, ids=None):
        """Waveforms ``[B, T(, C)]`` -> logits ``[B, n_classes]``."""
        return self.classifier(self.embedding_model(wavs, lengths))


class EncoderClassifierTeacher(torch.nn.Module):
    """A SpeechBrain ``EncoderClassifier`` as a teacher module.

    Runs what ``EncoderClassifier.classify_batch`` runs (features,
    normalisation, embedding model, classifier) on waveforms already at
    the model's rate, after mixing them to mono when its
    ``audio_normalizer`` does (SpeechBrain's default ``avg-to-mono``).
    What KD receives is the classifier's output. SpeechBrain classifiers
    usually end with a log-softmax, so these are log-posteriors: logits up
    to a constant per clip, which neither the softmax at temperature ``T``
    nor the KL divergence sees, so ``T`` flattens the teacher's
    distribution exactly as it would flatten its logits.

    Use :meth:`from_source` to load a folder or a hub id.

    Arguments
    ---------
    model : speechbrain.inference.classifiers.EncoderClassifier
    files : dict of str -> str
        The files the model was built from (``hyperparams.yaml`` and what
        its pretrainer loaded); their SHA-256 is :attr:`digest`.
    source : str
        Where it came from (named in errors).

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> from speechbrain.inference.classifiers import EncoderClassifier
    >>> from speechbrain_kd.inference import PassThrough
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["x", "y"])
    >>> class Mean(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return wavs.mean(1, keepdim=True)
    >>> mods = {"compute_features": PassThrough(),
    ...     "mean_var_norm": PassThrough(),
    ...     "embedding_model": Mean(),
    ...     "classifier": torch.nn.Sequential(torch.nn.Linear(1, 2),
    ...                                       torch.nn.LogSoftmax(-1))}
    >>> model = EncoderClassifier(
    ...     modules=mods, hparams={"label_encoder": encoder})
    >>> teacher = EncoderClassifierTeacher(model, {}, "in memory")
    >>> teacher.labels, teacher.sample_rate, teacher.mix
    (['x', 'y'], 16000, 'avg-to-mono')
    >>> teacher(torch.randn(3, 100, 2)).shape  # stereo, mixed to mono
    torch.Size([3, 2])
    """

    needs_ids = False

    def __init__(self, model, files, source):
        super().__init__()
        from speechbrain_kd.labels import encoder_labels

        self.mods = model.mods
        self.labels = encoder_labels(model.hparams.label_encoder)
        normalizer = model.audio_normalizer
        self.sample_rate = int(normalizer.sample_rate)
        self.mix = normalizer.mix
        self.source = str(source)
        self.checkpoint = None
        self.spec = {
            "kind": "inference",
            "labels": self.labels,
            "sample_rate": self.sample_rate,
            "mix": self.mix,
        }
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(f"{name}\0{file_sha256(files[name])}\n".encode())
        self.digest = digest.hexdigest()

    @classmethod
    def from_source(cls, source, device="cpu"):
        """Load a local inference folder or a hub id with SpeechBrain.

        A local folder is loaded in place (nothing is written to it). A hub
        id is fetched by SpeechBrain into the Hugging Face cache when the
        hub can be reached, and read from that cache when it cannot.

        Arguments
        ---------
        source : str or pathlib.Path
        device : str or torch.device

        Returns
        -------
        EncoderClassifierTeacher

        Raises
        ------
        FileNotFoundError
            A hub id that is neither reachable nor cached (one line).

        Example
        -------
        >>> import pytest
        >>> with pytest.MonkeyPatch.context() as mp:
        ...     mp.setenv("HF_HUB_OFFLINE", "1")
        ...     EncoderClassifierTeacher.from_source("nobody/no-model")
        Traceback (most recent call last):
        ...
        FileNotFoundError: teacher nobody/no-model: not a local path, and ...
        """
        from speechbrain.inference.classifiers import EncoderClassifier

        from speechbrain_kd.speechbrain_folder import load_exported

        device = str(device)
        if Path(source).is_dir():
            model = load_exported(source, device=device)
            hyperparams = Path(source).absolute() / "hyperparams.yaml"
        else:
            hyperparams, config = fetch_hub_hyperparams(source)
            model = EncoderClassifier.from_hparams(
                source=source,
                savedir=None,
                fetch_config=config,
                run_opts={"device": device},
            )
        files = dict(model.hparams.pretrainer.paths)
        files["hyperparams.yaml"] = str(hyperparams)
        return cls(model, files, source).to(device)

    def forward(self, wavs, lengths=None, ids=None):
        """Waveforms ``[B, T(, C)]`` at the model's rate -> ``[B, C]``."""
        if self.mix == "avg-to-mono":
            wavs = batch_of_channels(wavs, 1).squeeze(-1)
        if lengths is None:
            lengths = torch.ones(wavs.shape[0], device=wavs.device)
        # As EncoderClassifier.encode_batch and classify_batch do.
        feats = self.mods.compute_features(wavs.float())
        feats = self.mods.mean_var_norm(feats, lengths)
        embeddings = self.mods.embedding_model(feats, lengths)
        return self.mods.classifier(embeddings).squeeze(1)


def fetch_hub_hyperparams(source):
    """Fetch a hub model's ``hyperparams.yaml`` with SpeechBrain's fetching.

    From the hub when it can be reached (``HF_HUB_OFFLINE`` unset and a
    connection within seconds), else from the local Hugging Face cache.

    Arguments
    ---------
    source : str
        ``owner/name``.

    Returns
    -------
    path : pathlib.Path
        The local file.
    config : speechbrain.utils.fetching.FetchConfig
        How to fetch the model's other files the same way.

    Raises
    ------
    FileNotFoundError
        Neither cached nor reachable: one line naming the cache.

    Example
    -------
    >>> import pytest
    >>> with pytest.MonkeyPatch.context() as mp:
    ...     mp.setenv("HF_HUB_OFFLINE", "1")
    ...     fetch_hub_hyperparams("nobody/no-model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: teacher nobody/no-model: not a local path, and ...
    """
    from huggingface_hub import constants
    from speechbrain.utils.fetching import FetchConfig, fetch

    from speechbrain_kd.hub import check_online

    try:
        check_online()
        online, reason = True, None
    except RuntimeError as error:
        online, reason = False, str(error)
    config = FetchConfig(allow_network=online)
    try:
        return Path(fetch("hyperparams.yaml", source, fetch_config=config)), (
            config
        )
    except Exception as error:  # a fetch fails in many ways: one line
        why = reason or f"{type(error).__name__}: {error}".splitlines()[0]
        raise FileNotFoundError(
            f"teacher {source}: not a local path, and as a Hugging Face hub "
            f"id it cannot be fetched ({why}) nor found in the local cache "
            f"{constants.HF_HUB_CACHE}"
        ) from None


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
    >>> from speechbrain_kd.stored_logits import write_stored_logits
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
        raise TeacherError(
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


def logits_matrix(arrays, keys, labels, source):
    """Stack the arrays of ``keys`` as ``[N, C]``, checking each one.

    Arguments
    ---------
    arrays : dict of str -> numpy.ndarray
    keys : list of str
    labels : list of str
        Each array must hold one finite value per label.
    source : str
        Named in errors.

    Returns
    -------
    numpy.ndarray
        float32 ``[len(keys), len(labels)]``.

    Example
    -------
    >>> logits_matrix({"c1": np.zeros(3)}, ["c1"], ["a", "b"], "t.npz")
    Traceback (most recent call last):
    ...
    speechbrain_kd.teacher_sources.TeacherError: t.npz: logits of 'c1' have ...
    """
    rows = []
    for key in keys:
        values = np.asarray(arrays[key], dtype=np.float32)
        if values.size == len(labels) and values.ndim == 2:
            values = values.reshape(-1)  # [1, C]: one clip, one row
        if values.shape != (len(labels),):
            raise TeacherError(
                f"{source}: logits of {key!r} have shape {values.shape}, "
                f"not ({len(labels)},) (one value per label of {labels})"
            )
        if not np.isfinite(values).all():
            raise TeacherError(f"{source}: logits of {key!r} are not finite")
        rows.append(values)
    return np.stack(rows)


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
    >>> from speechbrain_kd.stored_logits import write_stored_logits
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
    speechbrain_kd.teacher_sources.TeacherError: teacher 't': ...no logits ...
    """

    needs_ids = True
    sample_rate = None  # any: the waveform is not used
    checkpoint = None

    def __init__(self, path):
        super().__init__()
        self.path = str(path)
        arrays, labels = read_stored_logits(path)
        if labels is None:
            raise TeacherError(
                f"{path} does not store its label order ({LABELS_KEY}): "
                "write it with python -m speechbrain_kd.stored_logits "
                "import ... --labels LABELS_TXT"
            )
        self.labels = labels
        self.ids = list(arrays)
        self.index = {clip_id: row for row, clip_id in enumerate(self.ids)}
        matrix = logits_matrix(arrays, self.ids, labels, path)
        # Not part of a state dict: the file is the source, digested below.
        self.register_buffer(
            "logits", torch.from_numpy(matrix), persistent=False
        )
        self.spec = {"kind": "stored", "labels": labels}
        self.digest = file_sha256(path)

    def check_clips(self, ids, where, who):
        """Raise ``ValueError`` naming clips of ``where`` without logits."""
        problem = missing_message(ids, self.index, self.path, where)
        if problem:
            raise TeacherError(f"{who}: {problem}")

    def forward(self, wavs, lengths=None, ids=None):
        """The logits ``[B, C]`` of clips ``ids``, on ``wavs``' device."""
        if ids is None:
            raise TeacherError(
                f"stored logits {self.path} are looked up by clip ID, which "
                "only the soft-label cache gives: use them with "
                "soft_label_mode 'cached' (not online, not in the ensemble "
                "phase)"
            )
        self.check_clips(list(ids), "the batch", "stored logits")
        rows = torch.tensor([self.index[i] for i in ids])
        return self.logits[rows.to(self.logits.device)].to(wavs.device)


def _weights_digest(model):
    digest = hashlib.sha256()
    if model.checkpoint is not None:
        for module in MODEL_MODULES:
            path = Path(model.checkpoint) / f"{module}.ckpt"
            digest.update(module.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()
    for module in MODEL_MODULES:
        state = getattr(model, module).state_dict()
        for key in sorted(state):
            tensor = state[key].detach().cpu().contiguous()
            digest.update(
                f"{module}.{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode()
            )
            digest.update(
                tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
            )
    return digest.hexdigest()
