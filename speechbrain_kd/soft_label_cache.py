"""The soft-label cache's file: its format, its staleness, its building.

A cache file holds the teachers' logits of every clip of a manifest
(``[N, V, K, C]``: clips, views, teachers, classes; view 0 the full clip,
the others fixed crops), keyed by clip ID, with the fingerprint of what
produced them: the teachers' weights and specs, the manifest's content, a
stamp of its audio files and the settings. A file whose fingerprint does
not match, or that lacks a clip, is stale and says why; building runs the
teachers once over the manifest and writes the file whole.
:class:`speechbrain_kd.soft_labels.SoftLabelCache` looks the logits up.
"""

import hashlib
import json
import logging
from pathlib import Path

import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_kd.audio import crop, load_audio
from speechbrain_kd.dataio import loader_options
from speechbrain_kd.files import file_sha256, replacing
from speechbrain_kd.manifests import file_stamp, read_manifest

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
# The parts of a cache's fingerprint, in the order they are reported.
FINGERPRINT_PARTS = ("teachers", "manifest", "audio", "settings")


def audio_digest(manifest_csv):
    """A cheap stamp of the audio files a manifest lists.

    SHA-256 of every clip's ID, size and modification time, not of the
    audio itself: reading every file at every check would cost as much as
    an epoch. A file rewritten, replaced or touched changes it.

    Arguments
    ---------
    manifest_csv : str or pathlib.Path
        A manifest with the columns ``ID`` and ``wav``.

    Returns
    -------
    str
        A hexadecimal digest.

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> _ = open(tmp + "/a.wav", "wb").write(b"RIFF")
    >>> _ = open(tmp + "/m.csv", "w").write("ID,wav\\na," + tmp + "/a.wav\\n")
    >>> before = audio_digest(tmp + "/m.csv")
    >>> _ = open(tmp + "/a.wav", "ab").write(b"more")
    >>> audio_digest(tmp + "/m.csv") == before
    False
    >>> import os
    >>> os.remove(tmp + "/a.wav")
    >>> audio_digest(tmp + "/m.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...m.csv: audio file .../a.wav of clip a cannot be ...
    """
    audio = hashlib.sha256()
    for clip_id, wav in _manifest_clips(manifest_csv).items():
        _, size, mtime_ns = file_stamp(wav, manifest_csv, clip_id)
        audio.update(f"{clip_id}\0{size}\0{mtime_ns}\n".encode())
    return audio.hexdigest()


def fingerprint_of(
    ensemble,
    manifest_csv,
    sample_rate,
    channels,
    n_crop_views=0,
    crop_seconds=None,
):
    """The fingerprint a cache for these inputs must carry.

    Arguments
    ---------
    ensemble : speechbrain_kd.teachers.TeacherEnsemble
    manifest_csv : str or pathlib.Path
    sample_rate, channels, n_crop_views, crop_seconds
        As in :func:`load_or_build`.

    Returns
    -------
    fingerprint : dict of str -> str
        Digests of ``teachers`` (checkpoint content and model specs,
        :meth:`~speechbrain_kd.teachers.TeacherEnsemble.fingerprint`),
        ``manifest`` (the CSV's content), ``audio`` (size and
        modification time of every audio file) and ``settings``.
    settings : dict
        The settings in plain form (stored beside the digests so that
        a changed setting can be named).

    Example
    -------
    >>> class Fake:
    ...     labels, names = ["a", "b"], ["t"]
    ...     def fingerprint(self):
    ...         return "0" * 64
    >>> path = getfixture("tmpdir") + "/m.csv"
    >>> _ = open(path, "w").write("ID,wav\\n")
    >>> digests, settings = fingerprint_of(
    ...     Fake(), path, 16000, 2)
    >>> sorted(digests), settings["sample_rate"]
    (['audio', 'manifest', 'settings', 'teachers'], 16000)
    >>> settings["n_crop_views"], settings["crop_seconds"]  # whole clips
    (0, None)
    """
    settings = {
        "format_version": FORMAT_VERSION,
        "sample_rate": int(sample_rate),
        "channels": int(channels),
        "n_crop_views": int(n_crop_views),
        "crop_seconds": None if crop_seconds is None else crop_seconds,
        "labels": list(ensemble.labels),
        "teachers": list(ensemble.names),
    }
    digests = {
        "teachers": ensemble.fingerprint(),
        "manifest": file_sha256(manifest_csv),
        "audio": audio_digest(manifest_csv),
        "settings": hashlib.sha256(
            json.dumps(settings, sort_keys=True).encode()
        ).hexdigest(),
    }
    return digests, settings


def load_or_build(
    path,
    ensemble,
    manifest_csv,
    sample_rate,
    channels,
    rebuild="auto",
    n_crop_views=0,
    crop_seconds=None,
    batch_size=8,
    device=None,
):
    """The content of the cache file at ``path``: loaded if current, else built.

    What :meth:`speechbrain_kd.soft_labels.SoftLabelCache.build_or_load`
    stands on; the arguments are described there. The file is current when
    its fingerprint (:func:`fingerprint_of`) matches and it holds every clip
    of the manifest; else the teachers run over the manifest
    (:func:`compute_teacher_logits`) and the file is written atomically.

    Returns
    -------
    ids : list of str
        Clip IDs, one per row of ``logits``.
    logits : torch.Tensor
        ``[N, V, K, C]``: clips, views, teachers, classes.
    fingerprint : dict of str -> str
        The digests the content was built for.

    Example
    -------
    >>> import soundfile
    >>> from speechbrain_kd.checkpoints import TrainedModel
    >>> from speechbrain_kd.teachers import TeacherEnsemble
    >>> class Peak(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return wavs.amax(1)
    >>> teacher = TrainedModel(Peak(), torch.nn.Linear(1, 2), ["a", "b"],
    ...                        8000, {}, None)
    >>> ensemble = TeacherEnsemble({"t1": teacher, "t2": teacher})
    >>> tmp = str(getfixture("tmpdir"))
    >>> soundfile.write(tmp + "/c1.wav", torch.ones(800).numpy(), 8000)
    >>> _ = open(tmp + "/m.csv", "w").write("ID,wav\\nc1," + tmp + "/c1.wav\\n")
    >>> ids, logits, _ = load_or_build(tmp + "/cache.pt", ensemble,
    ...     tmp + "/m.csv", 8000, 1, n_crop_views=1, crop_seconds=0.05)
    >>> ids, logits.shape  # clips, views (whole clip and a crop), teachers
    (['c1'], torch.Size([1, 2, 2, 2]))
    >>> load_or_build(tmp + "/cache.pt", ensemble, tmp + "/m.csv", 8000, 1,
    ...     rebuild="never")
    Traceback (most recent call last):
    ...
    RuntimeError: ... settings changed (n_crop_views: 1 -> 0; ...
    """
    if rebuild not in ("auto", "never"):
        raise ValueError(f"rebuild must be 'auto' or 'never', not {rebuild!r}")
    if int(sample_rate) != int(ensemble.sample_rate):
        raise ValueError(
            f"soft-label cache {path}: sample_rate={sample_rate} but the "
            f"teachers take {ensemble.sample_rate} Hz: read the clips at "
            "the teachers' rate"
        )
    _check_views(n_crop_views, crop_seconds)
    path = Path(path)
    # What the file is built from: its fingerprint and its content alike.
    inputs = (
        ensemble,
        manifest_csv,
        sample_rate,
        channels,
        n_crop_views,
        crop_seconds,
    )
    expected, settings = fingerprint_of(*inputs)
    clips = _manifest_clips(manifest_csv)
    problem = None
    if path.is_file():
        content, problem = _read_cache(path)
        if problem is None:
            problem = _staleness(
                path, content, expected, settings, clips, manifest_csv
            )
        if problem is None:
            logger.info("Using soft-label cache %s", path)
            return content["ids"], content["logits"], expected
    if problem and rebuild == "never":
        raise RuntimeError(
            f"{problem}. Delete {path} to rebuild it, or build it with "
            "rebuild='auto' (on the main process)"
        )
    if problem:
        logger.warning("%s: rebuilding it", problem)
    logits = compute_teacher_logits(*inputs, batch_size, device)
    ids = list(clips)
    content = {
        "format_version": FORMAT_VERSION,
        "fingerprint": expected,
        "settings": settings,
        "manifest_csv": str(manifest_csv),
        "teacher_folders": [ensemble.folders[n] for n in ensemble.names],
        "ids": ids,
        "logits": logits,
    }
    with replacing(path) as tmp:
        torch.save(content, tmp)
    logger.info(
        "Wrote soft-label cache %s (%d clips, %d view(s), %d teachers)",
        path,
        len(ids),
        logits.shape[1],
        logits.shape[2],
    )
    return ids, logits, expected


@torch.no_grad()
def compute_teacher_logits(
    ensemble,
    manifest_csv,
    sample_rate,
    channels,
    n_crop_views=0,
    crop_seconds=None,
    batch_size=8,
    device=None,
    num_workers="auto",
):
    """Run the teachers over every clip of a manifest.

    View 0 is the full clip; view ``v`` (1 to ``n_crop_views``) is the crop
    of ``crop_seconds`` starting at ``(v - 1) / (n_crop_views - 1)`` of the
    clip's free room (one crop view: the centre crop). Clips of a batch are
    zero-padded to the longest (SpeechBrain's ``PaddedBatch``) and the
    teachers get the relative lengths.

    Arguments
    ---------
    ensemble : speechbrain_kd.teachers.TeacherEnsemble
    manifest_csv : str or pathlib.Path
    sample_rate, channels : int
        How the clips are read (:func:`speechbrain_kd.audio.load_audio`).
    n_crop_views : int
    crop_seconds : float, optional
    batch_size : int
    device : str or torch.device, optional
        Where the teachers run (default: where they are).
    num_workers : int or "auto"
        Loader workers reading the clips
        (:func:`speechbrain_kd.dataio.loader_options`).

    Returns
    -------
    torch.Tensor
        float32 ``[N, 1 + n_crop_views, K, C]`` on the CPU, in manifest
        order.

    Example
    -------
    >>> import soundfile
    >>> class Ends(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return torch.stack([wavs[:, :1, 0], wavs[:, -1:, 0]])
    >>> tmp = str(getfixture("tmpdir"))
    >>> soundfile.write(tmp + "/c.wav", torch.arange(8.).numpy() / 8, 8)
    >>> _ = open(tmp + "/m.csv", "w").write("ID,wav\\nc," + tmp + "/c.wav\\n")
    >>> compute_teacher_logits(Ends(), tmp + "/m.csv", 8, 1, 2, 0.5)[0] * 8
    tensor([[[0.],
             [7.]],
    <BLANKLINE>
            [[0.],
             [3.]],
    <BLANKLINE>
            [[4.],
             [7.]]])
    """
    _check_views(n_crop_views, crop_seconds)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    clips = list(_manifest_clips(manifest_csv).items())
    if getattr(ensemble, "needs_ids", False):  # stored-logits teachers
        ensemble.check_clips([clip_id for clip_id, _ in clips], manifest_csv)
    if device is not None:
        ensemble = ensemble.to(device)
    device = next((p.device for p in ensemble.parameters()), "cpu")
    n_crop = int(round(crop_seconds * sample_rate)) if n_crop_views else 0
    # Clips are read by loader workers (on a GPU) while the teachers run.
    reader = torch.utils.data.DataLoader(
        _ClipReader([wav for _, wav in clips], sample_rate, channels),
        batch_size=batch_size,
        collate_fn=list,
        **loader_options({"num_workers": num_workers}, device),
    )
    n_batches = len(reader)
    ids_needed = getattr(ensemble, "needs_ids", False)
    out = []
    for number, wavs in enumerate(reader):
        views = [wavs]
        for view in range(n_crop_views):
            views.append(
                [
                    crop(
                        wav,
                        n_crop,
                        start=_crop_start(len(wav), n_crop, view, n_crop_views),
                    )
                    for wav in wavs
                ]
            )
        per_view = []
        # Stored-logits teachers look clips up by ID (same for every view).
        first = number * batch_size
        ids = {"ids": [i for i, _ in clips[first : first + len(wavs)]]}
        for view in views:
            sig, lengths = PaddedBatch([{"sig": w} for w in view]).sig
            args = (sig.to(device), lengths.to(device))
            logits = ensemble(*args, **ids) if ids_needed else ensemble(*args)
            per_view.append(logits.float().cpu())
        # [V, K, B, C] -> [B, V, K, C]
        out.append(torch.stack(per_view).permute(2, 0, 1, 3))
        if (number + 1) % max(n_batches // 10, 1) == 0:
            logger.info("Soft labels: %d / %d batches", number + 1, n_batches)
    if not out:
        raise ValueError(f"{manifest_csv} lists no clips")
    return torch.cat(out)


class _ClipReader(torch.utils.data.Dataset):
    """Full clips, read and adapted like every phase reads them."""

    def __init__(self, paths, sample_rate, channels):
        self.paths = paths
        self.sample_rate = sample_rate
        self.channels = channels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return load_audio(self.paths[index], self.sample_rate, self.channels)


def _crop_start(length, n_samples, view, n_views):
    room = max(length - n_samples, 0)
    if n_views == 1:
        return room // 2
    return round(view * room / (n_views - 1))


def _check_views(n_crop_views, crop_seconds):
    if int(n_crop_views) != n_crop_views or n_crop_views < 0:
        raise ValueError(
            f"n_crop_views must be a non-negative integer, got {n_crop_views}"
        )
    if n_crop_views and not (crop_seconds and crop_seconds > 0):
        raise ValueError(
            f"n_crop_views={n_crop_views} needs a positive crop_seconds, "
            f"got {crop_seconds}"
        )


def _manifest_clips(manifest_csv):
    try:
        return read_manifest(manifest_csv)
    except KeyError as error:
        raise ValueError(
            f"{manifest_csv} needs the columns ID and wav (missing {error})"
        ) from error


def _read_cache(path):
    """The content of a cache file, or why it cannot be used."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say so
        return None, f"soft-label cache {path} cannot be read ({error})"
    needed = ("format_version", "fingerprint", "settings", "ids", "logits")
    if not isinstance(content, dict) or any(k not in content for k in needed):
        return None, (
            f"soft-label cache {path} is not in the format of this version "
            f"(format {FORMAT_VERSION})"
        )
    return content, None


def _staleness(path, content, expected, settings, clips, manifest_csv):
    """Why a cache does not fit (None if it does)."""
    stored = content["fingerprint"]
    changed = [p for p in FINGERPRINT_PARTS if stored.get(p) != expected[p]]
    if "manifest" in changed and "audio" in changed:
        # The audio digest lists the manifest's clips: name the cause only.
        changed.remove("audio")
    if changed:
        reasons = []
        for part in changed:
            if part == "teachers":
                reasons.append(
                    "teachers changed (checkpoint content, model specs or "
                    "teacher order)"
                )
            elif part == "manifest":
                had, now = set(content["ids"]), set(clips)
                reasons.append(
                    f"manifest {manifest_csv} changed ({len(now - had)} "
                    f"clip(s) added, {len(had - now)} removed)"
                )
            elif part == "audio":
                reasons.append(
                    "audio files changed (size or modification time)"
                )
            else:
                diff = [
                    f"{key}: {content['settings'].get(key)!r} -> {value!r}"
                    for key, value in settings.items()
                    if content["settings"].get(key) != value
                ]
                reasons.append(f"settings changed ({'; '.join(diff)})")
        return f"soft-label cache {path} is stale: {', '.join(reasons)}"
    have = set(content["ids"])
    missing = [clip_id for clip_id in clips if clip_id not in have]
    if missing or content["logits"].shape[0] != len(content["ids"]):
        return (
            f"soft-label cache {path} is incomplete: {len(missing)} clip(s) "
            f"of {manifest_csv} missing, e.g. {missing[:5]}"
        )
    return None
