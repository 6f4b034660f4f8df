"""Teacher soft labels, computed online or once and cached.

The student of Jung et al., "Knowledge Distillation in Acoustic Scene
Classification", IEEE Access 2020, learns the soft labels of frozen
teachers (the baseline and the specialists). Both providers here answer
``teacher_logits(batch) -> [K, B, C]`` (float32, on the batch's device), so
the student's Brain does not care which one it has:

- :class:`OnlineSoftLabels` runs the teachers at every step on
  ``batch.teacher_sig``, the teachers' view built by the data pipeline: the
  full clip, or the paper's multi-segment input (the clip joined in time
  with another random clip of the same scene). Exact, but every step pays
  for K teacher forward passes.
- :class:`SoftLabelCache` runs the teachers once per clip (on the full
  clip, plus optional fixed crops), stores the logits keyed by clip ID in
  one file with a fingerprint of what produced them, and looks them up by
  ``batch.id``. With ``multi_segment`` the soft label is the mean of the
  cached logits of the clip and of ``batch.partner_id`` (a clip of the same
  scene): an approximation of the online multi-segment input, since the
  teachers' pooling over a joined waveform is not the mean of two poolings.
  CP-JKU's DCASE 2023 system stores ensemble logits the same way.

Keying by clip ID, never by dataset position, avoids the silent misalignment
that stored teacher outputs suffered elsewhere when clips went missing: a
clip that is not in the cache is an error.

:func:`make_soft_labels` picks a provider from the recipe's
``soft_label_mode``. The cache's file (its format, staleness and building)
is :mod:`speechbrain_kd.soft_label_cache`.

Batch keys the data pipeline must provide (training set only):

============  ==============================================================
mode          keys
============  ==============================================================
online        ``id``, ``teacher_sig`` (the teachers' view, at the
              teachers' sample rate)
cached        ``id``; with ``multi_segment``, also ``partner_id``
============  ==============================================================
"""

import torch
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.hparams_preview import SettingError
from speechbrain_kd.soft_label_cache import load_or_build

# What online teachers hear: the full clip (joined with a same-scene
# partner when multi_segment), or the student's own input.
TEACHER_VIEWS = ("clip", "student_input")


def check_teacher_view(settings):
    """Refuse a ``teacher_view`` the distillation phase cannot give.

    ``student_input`` (teacher and student judge the same audio, the
    "consistent teaching" of Beyer et al., "Knowledge distillation: A good
    teacher is patient and consistent", CVPR 2022) needs online teachers
    (a cache cannot hold their view of every random crop) and no
    multi-segment partner.

    Arguments
    ---------
    settings : dict
        The phase's plain settings (``teacher_view``, ``soft_label_mode``,
        ``multi_segment``).

    Example
    -------
    >>> check_teacher_view({"teacher_view": "student_input",
    ...                     "soft_label_mode": "online",
    ...                     "multi_segment": False})
    >>> check_teacher_view({"teacher_view": "student_input",
    ...                     "soft_label_mode": "cached"})
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --teacher_view=student_in...
    """
    view = settings.get("teacher_view", "clip")
    if view not in TEACHER_VIEWS:
        raise SettingError(
            f"--teacher_view={view!r} must be one of {', '.join(TEACHER_VIEWS)}"
        )
    if view != "student_input":
        return
    if settings.get("soft_label_mode") != "online":
        raise SettingError(
            "--teacher_view=student_input needs --soft_label_mode=online "
            "(a cache cannot hold the teachers' view of every random crop)"
        )
    if settings.get("multi_segment"):
        raise SettingError(
            "--teacher_view=student_input: the teachers hear the student's "
            "crop alone; set --multi_segment=False"
        )


class OnlineSoftLabels:
    """Run the teachers on ``batch.teacher_sig`` at every step.

    Arguments
    ---------
    ensemble : speechbrain_kd.teachers.TeacherEnsemble
        Anything that maps ``(wavs, lengths)`` to logits ``[K, B, C]``.

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> class Double(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return torch.stack([wavs.mean(1), 2 * wavs.mean(1)])
    >>> batch = PaddedBatch([{"id": "a", "teacher_sig": torch.ones(4, 2)}])
    >>> OnlineSoftLabels(Double()).teacher_logits(batch)
    tensor([[[1., 1.]],
    <BLANKLINE>
            [[2., 2.]]])
    """

    def __init__(self, ensemble):
        self.ensemble = ensemble

    def teacher_logits(self, batch):
        """Teacher logits ``[K, B, C]`` of the batch's ``teacher_sig``.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``teacher_sig`` (waveforms and relative lengths).

        Returns
        -------
        torch.Tensor
            float32, on the device of ``teacher_sig``.
        """
        teacher_sig = getattr(batch, "teacher_sig", None)
        if teacher_sig is None:
            raise KeyError(
                "online soft labels need batch.teacher_sig (the teachers' "
                "view of each clip): add it to the training set's output "
                "keys"
            )
        wavs, lengths = teacher_sig
        device = next(
            (p.device for p in self.ensemble.parameters()), wavs.device
        )
        logits = self.ensemble(wavs.to(device), lengths.to(device))
        return logits.float().to(wavs.device)


class SoftLabelCache:
    """Teacher outputs computed once per clip, looked up by clip ID.

    Use :meth:`build_or_load`; the constructor takes loaded content.

    Views: view 0 is the full clip; views 1 to ``n_crop_views`` are fixed,
    evenly spaced crops (see
    :func:`~speechbrain_kd.soft_label_cache.compute_teacher_logits`). When
    there is more than one view, each lookup picks one view per clip at
    random, so the student meets the teachers' opinion of several segments
    over the epochs without paying for online teachers.

    Arguments
    ---------
    ids : list of str
        Clip IDs, one per row of ``logits``.
    logits : torch.Tensor
        ``[N, V, K, C]``: clips, views (the full clip first), teachers,
        classes.
    fingerprint : dict of str -> str
        The digests the cache was built for (see
        :func:`~speechbrain_kd.soft_label_cache.fingerprint_of`).
    multi_segment : bool
        Average each clip's logits with those of ``batch.partner_id``.
    generator : torch.Generator, optional
        Draws the views; default: torch's generator (seeded by
        SpeechBrain).

    Example
    -------
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> cache = SoftLabelCache(["a", "b"], torch.arange(8.).view(2, 1, 2, 2),
    ...                        {}, multi_segment=True)
    >>> batch = PaddedBatch([{"id": "a", "partner_id": "b"}])
    >>> cache.teacher_logits(batch)[:, 0]
    tensor([[2., 3.],
            [4., 5.]])
    >>> cache.teacher_logits(PaddedBatch([{"id": "c", "partner_id": "a"}]))
    Traceback (most recent call last):
    ...
    KeyError: "1 clip(s) of the batch are not in the soft-label cache: ['c']..."
    """

    def __init__(
        self, ids, logits, fingerprint, multi_segment=False, generator=None
    ):
        self.ids = list(ids)
        if logits.dim() != 4 or logits.shape[0] != len(self.ids):
            raise ValueError(
                f"cached logits must be [clips={len(self.ids)}, views, "
                f"teachers, classes], got {tuple(logits.shape)}"
            )
        self.index = {clip_id: row for row, clip_id in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise ValueError("cached clip IDs are not unique")
        self.logits = logits.float()
        self.fingerprint = dict(fingerprint)
        self.multi_segment = multi_segment
        self.generator = generator

    @classmethod
    def build_or_load(
        cls,
        path,
        ensemble,
        manifest_csv,
        sample_rate,
        channels,
        multi_segment=False,
        n_crop_views=0,
        crop_seconds=None,
        batch_size=8,
        device=None,
        rebuild="auto",
        generator=None,
    ):
        """Load the cache at ``path`` if it is current, else build it.

        The cache is current when its fingerprint matches (same teacher
        weights and specs, same manifest content, same audio files, same
        settings) and it holds every clip of the manifest. Building runs
        the teachers over the whole manifest and writes the file
        atomically (temporary file, then ``os.replace``): a failure leaves
        no partial cache. Under DDP, build on the main process only (wrap
        this call in ``run_on_main``, or use :func:`make_soft_labels`),
        then load on every process with ``rebuild="never"``.

        Arguments
        ---------
        path : str or pathlib.Path
            The cache file (``save/soft_labels.pt`` in the recipe).
        ensemble : speechbrain_kd.teachers.TeacherEnsemble
        manifest_csv : str or pathlib.Path
            SpeechBrain CSV with ``ID`` and ``wav`` columns (the training
            set).
        sample_rate : int
            The rate the clips are read at; must be the teachers' rate.
        channels : int
            The channel count the clips are read with.
        multi_segment : bool
            Average each clip's soft label with ``batch.partner_id``'s
            (lookup only: not part of the fingerprint).
        n_crop_views : int
            Extra views: evenly spaced crops of ``crop_seconds``; a lookup
            picks one view of each clip at random (the full clip included).
        crop_seconds : float, optional
            Needed when ``n_crop_views > 0``.
        batch_size : int
            Clips per teacher forward pass while building.
        device : str or torch.device, optional
            Where the teachers run while building (default: where they
            are).
        rebuild : str
            ``"auto"``: rebuild a stale or incomplete cache, with a warning
            saying why; ``"never"``: raise an error saying what changed.
        generator : torch.Generator, optional
            Draws the views at lookup.

        Returns
        -------
        SoftLabelCache

        Example
        -------
        >>> import soundfile
        >>> from speechbrain.dataio.batch import PaddedBatch
        >>> from speechbrain_kd.checkpoints import TrainedModel
        >>> class Mean(torch.nn.Module):
        ...     def forward(self, wavs, lengths=None):
        ...         return wavs.mean(1)
        >>> from speechbrain_kd.teachers import TeacherEnsemble
        >>> ensemble = TeacherEnsemble({"t": TrainedModel(
        ...     Mean(), torch.nn.Linear(1, 3), ["a", "b", "c"], 8000, {},
        ...     None)})
        >>> tmp = str(getfixture("tmpdir"))
        >>> soundfile.write(tmp + "/c1.wav", torch.zeros(800).numpy(), 8000)
        >>> _ = open(tmp + "/train.csv", "w").write(
        ...     "ID,wav\\nc1," + tmp + "/c1.wav\\n")
        >>> cache = SoftLabelCache.build_or_load(
        ...     tmp + "/cache.pt", ensemble, tmp + "/train.csv", 8000, 1)
        >>> cache.teacher_logits(PaddedBatch([{"id": "c1"}])).shape
        torch.Size([1, 1, 3])
        >>> SoftLabelCache.build_or_load(tmp + "/cache.pt", ensemble,
        ...     tmp + "/train.csv", 8000, 2, rebuild="never")
        Traceback (most recent call last):
        ...
        RuntimeError: ... settings changed (channels: 1 -> 2)... Delete ...
        """
        ids, logits, expected = load_or_build(
            path,
            ensemble,
            manifest_csv,
            sample_rate,
            channels,
            rebuild=rebuild,
            n_crop_views=n_crop_views,
            crop_seconds=crop_seconds,
            batch_size=batch_size,
            device=device,
        )
        return cls(ids, logits, expected, multi_segment, generator)

    def _rows(self, ids, key):
        missing = [clip_id for clip_id in ids if clip_id not in self.index]
        if missing:
            raise KeyError(
                f"{len(missing)} clip(s) of the batch are not in the "
                f"soft-label cache: {missing[:10]} (batch.{key}); build the "
                "cache from the manifest the training set is read from"
            )
        return torch.tensor([self.index[clip_id] for clip_id in ids])

    def _pick(self, ids, key):
        rows = self._rows(ids, key)
        views = self.logits.shape[1]
        if views == 1:
            return self.logits[rows, 0]
        choice = torch.randint(views, (len(rows),), generator=self.generator)
        return self.logits[rows, choice]  # [B, K, C]

    def teacher_logits(self, batch):
        """Cached teacher logits ``[K, B, C]`` of ``batch.id``.

        Arguments
        ---------
        batch : speechbrain.dataio.batch.PaddedBatch
            With ``id``, and ``partner_id`` when ``multi_segment``.

        Returns
        -------
        torch.Tensor
            float32, on the device of ``batch.sig`` (the CPU if the batch
            has no ``sig``).
        """
        logits = self._pick(batch.id, "id")
        if self.multi_segment:
            partners = getattr(batch, "partner_id", None)
            if partners is None:
                raise KeyError(
                    "multi-segment soft labels need batch.partner_id (a "
                    "clip of the same scene for each clip): add it to the "
                    "training set's output keys"
                )
            logits = (logits + self._pick(partners, "partner_id")) / 2
        return logits.transpose(0, 1).contiguous().to(_batch_device(batch))


def make_soft_labels(mode, ensemble, **cache_kwargs):
    """The soft-label provider of a recipe's ``soft_label_mode``.

    ``"online"`` gives :class:`OnlineSoftLabels` (the data pipeline builds
    ``teacher_sig``, joined with a partner clip for the multi-segment
    input; ``cache_kwargs`` are ignored). ``"cached"`` builds or checks the
    cache on the main process (``run_on_main``; the other processes wait),
    then loads it on every process with ``rebuild="never"``, so that all
    processes use the same, current file.

    Arguments
    ---------
    mode : str
        ``"online"`` or ``"cached"``.
    ensemble : speechbrain_kd.teachers.TeacherEnsemble
    **cache_kwargs
        The arguments of :meth:`SoftLabelCache.build_or_load` (``path``,
        ``manifest_csv``, ``sample_rate``, ``channels``, ...).

    Returns
    -------
    OnlineSoftLabels or SoftLabelCache

    Example
    -------
    >>> make_soft_labels("online", torch.nn.Identity()).__class__.__name__
    'OnlineSoftLabels'
    >>> make_soft_labels("offline", None)
    Traceback (most recent call last):
    ...
    ValueError: soft_label_mode must be 'online' or 'cached', not 'offline'
    """
    if mode == "online":
        if getattr(ensemble, "needs_ids", False):
            raise ValueError(
                "stored-logits teachers hold one output per clip, not per "
                "teacher view: use soft_label_mode 'cached'"
            )
        return OnlineSoftLabels(ensemble)
    if mode != "cached":
        raise ValueError(
            f"soft_label_mode must be 'online' or 'cached', not {mode!r}"
        )
    kwargs = dict(cache_kwargs, ensemble=ensemble)
    # Build (or check) on the main process only; nothing is broadcast: every
    # process then reads the file, which must be current by now.
    run_on_main(_build_only, kwargs=kwargs)
    return SoftLabelCache.build_or_load(**dict(kwargs, rebuild="never"))


def _build_only(**kwargs):
    SoftLabelCache.build_or_load(**kwargs)


def _batch_device(batch):
    for key in ("sig", "teacher_sig"):
        value = getattr(batch, key, None)
        if value is not None:
            return value.data.device
    return torch.device("cpu")


def teacher_soft_labels(
    mode, teacher_folders, labels, device, label_map=None, **cache_kwargs
):
    """The soft labels of a student: its teachers, online or cached.

    Loads the teachers in ``teacher_folders`` (any kind of
    :func:`~speechbrain_kd.teacher_sources.teacher_kind`) as one frozen
    :class:`~speechbrain_kd.teachers.TeacherEnsemble` taking the clips at
    ``sample_rate`` (labels matched by name) and wraps it with
    :func:`make_soft_labels`.

    Arguments
    ---------
    mode : str
        ``"online"`` or ``"cached"``.
    teacher_folders : list of str
        Phase output folders, inference folders, hub ids or stored logits.
    labels : list of str
        The student's label order (its label encoder's).
    device : str or torch.device
        Where the teachers run.
    label_map : dict of str -> str or None, optional
        ``teacher_label_map``: teacher label -> student label.
    **cache_kwargs
        For the cache: ``path``, ``manifest_csv``, ``sample_rate``,
        ``channels``, ``multi_segment``, ... (see
        :meth:`SoftLabelCache.build_or_load`).

    Returns
    -------
    OnlineSoftLabels or SoftLabelCache

    Example
    -------
    >>> teacher_soft_labels("online", ["/nowhere"], ["a"], "cpu")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...nowhere...
    """
    from speechbrain_kd.teachers import TeacherEnsemble

    ensemble = TeacherEnsemble.from_teacher_folders(
        teacher_folders,
        labels=labels,
        device=device,
        sample_rate=cache_kwargs.get("sample_rate"),
        label_map=label_map,
    )
    return make_soft_labels(mode, ensemble, device=device, **cache_kwargs)
