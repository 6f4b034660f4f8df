"""Teacher soft labels, computed online or once and cached.

Both providers answer ``teacher_logits(batch) -> [K, B, C]`` so the student's
Brain does not care which one it has:

- :class:`OnlineSoftLabels` runs the frozen teachers at every step on
  ``batch.teacher_sig`` (the full clip, or the paper's multi-segment input:
  the clip joined in time with another random clip of the same scene).
- :class:`SoftLabelCache` runs them once per clip (full clip, plus optional
  fixed crops) and looks the outputs up by clip ID. The file carries a
  fingerprint of the teachers' weights, the manifest and the settings; a
  stale or incomplete cache is rebuilt (with a warning) or refused, never
  used. The multi-segment soft label is the mean of the cached logits of the
  clip and of ``batch.partner_id``, an approximation of the online input
  (the teachers' pooling of a joined waveform is not the mean of two
  poolings).

Keying by clip ID, never by dataset position, avoids the silent misalignment
that stored teacher outputs suffered elsewhere when clips went missing.
"""

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_kd.dataio import crop, load_audio, read_manifest

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


class OnlineSoftLabels:
    """Run the teachers on ``batch.teacher_sig`` at every step.

    Arguments
    ---------
    ensemble : speechbrain_kd.teachers.TeacherEnsemble

    Example
    -------
    >>> class Double(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return torch.stack([wavs.mean(1), 2 * wavs.mean(1)])
    >>> batch = PaddedBatch([{"id": "a", "teacher_sig": torch.ones(4, 2)}])
    >>> OnlineSoftLabels(Double()).teacher_logits(batch).shape
    torch.Size([2, 1, 2])
    """

    def __init__(self, ensemble):
        self.ensemble = ensemble

    def teacher_logits(self, batch):
        """Teacher logits ``[K, B, C]`` for the batch's teacher view."""
        wavs, lengths = batch.teacher_sig
        device = next(
            (p.device for p in self.ensemble.parameters()), wavs.device
        )
        return self.ensemble(wavs.to(device), lengths.to(device))


def file_sha256(path):
    """SHA-256 of a file's content.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.txt"
    >>> _ = open(path, "w").write("abc")
    >>> file_sha256(path)[:12]
    'ba7816bf8f01'
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class SoftLabelCache:
    """Teacher outputs computed once per clip, looked up by clip ID.

    Use :meth:`build_or_load`; the constructor takes loaded content.

    Arguments
    ---------
    ids : list of str
    logits : torch.Tensor
        ``[N, V, K, C]``: clips, views (the full clip first), teachers,
        classes.
    fingerprint : dict
        ``teachers``, ``manifest`` and ``settings`` digests.
    multi_segment : bool
        Average each clip's soft label with ``batch.partner_id``'s.

    Example
    -------
    >>> cache = SoftLabelCache(["a", "b"], torch.arange(8.).view(2, 1, 2, 2),
    ...                        {}, multi_segment=True)
    >>> batch = PaddedBatch([{"id": "a", "partner_id": "b"}])
    >>> cache.teacher_logits(batch)[:, 0]
    tensor([[2., 3.],
            [4., 5.]])
    """

    def __init__(self, ids, logits, fingerprint, multi_segment=False):
        self.ids = list(ids)
        self.index = {clip_id: row for row, clip_id in enumerate(self.ids)}
        self.logits = logits
        self.fingerprint = fingerprint
        self.multi_segment = multi_segment

    @staticmethod
    def expected_fingerprint(
        ensemble,
        manifest_csv,
        sample_rate,
        channels,
        n_crop_views=0,
        crop_seconds=None,
    ):
        """The fingerprint a cache for these inputs must carry."""
        settings = {
            "version": CACHE_VERSION,
            "sample_rate": sample_rate,
            "channels": channels,
            "n_crop_views": n_crop_views,
            "crop_seconds": crop_seconds,
            "labels": ensemble.labels,
            "teachers": ensemble.names,
        }
        return {
            "teachers": ensemble.fingerprint(),
            "manifest": file_sha256(manifest_csv),
            "settings": hashlib.sha256(
                json.dumps(settings, sort_keys=True).encode()
            ).hexdigest(),
        }

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
        device="cpu",
        rebuild="auto",
    ):
        """Load the cache at ``path`` if it is current, else build it.

        Arguments
        ---------
        path : str or pathlib.Path
        ensemble : speechbrain_kd.teachers.TeacherEnsemble
        manifest_csv : str or pathlib.Path
            SpeechBrain CSV with ``ID`` and ``wav`` columns.
        sample_rate, channels : int
            How clips are read for the teachers.
        multi_segment : bool
            See the class.
        n_crop_views : int
            Extra views: evenly spaced crops of ``crop_seconds``; a lookup
            picks one view of each clip at random (the full clip included).
        crop_seconds : float, optional
        batch_size : int
        device : str
        rebuild : str
            ``"auto"``: rebuild a stale or incomplete cache with a warning;
            ``"never"``: raise instead (used after the main process built
            it under DDP).

        Returns
        -------
        SoftLabelCache
        """
        if rebuild not in ("auto", "never"):
            raise ValueError(
                f"rebuild must be 'auto' or 'never', not {rebuild!r}"
            )
        path = Path(path)
        expected = cls.expected_fingerprint(
            ensemble,
            manifest_csv,
            sample_rate,
            channels,
            n_crop_views,
            crop_seconds,
        )
        wanted_ids = list(read_manifest(manifest_csv))
        problem = None
        if path.is_file():
            content = torch.load(path, map_location="cpu", weights_only=True)
            stale = [
                part
                for part in ("teachers", "manifest", "settings")
                if content["fingerprint"].get(part) != expected[part]
            ]
            missing = set(wanted_ids) - set(content["ids"])
            if stale:
                problem = (
                    f"soft-label cache {path} is stale: the "
                    f"{' and '.join(stale)} changed since it was built"
                )
            elif missing:
                problem = (
                    f"soft-label cache {path} is incomplete: {len(missing)} "
                    f"clip(s) missing, e.g. {sorted(missing)[:3]}"
                )
            else:
                logger.info("using soft-label cache %s", path)
                return cls(
                    content["ids"], content["logits"], expected, multi_segment
                )
        if problem and rebuild == "never":
            raise RuntimeError(
                problem + "; delete it or run with rebuilding allowed"
            )
        if problem:
            logger.warning("%s: rebuilding it", problem)
        logits = compute_teacher_logits(
            ensemble,
            manifest_csv,
            sample_rate,
            channels,
            n_crop_views,
            crop_seconds,
            batch_size,
            device,
        )
        _save_atomic(
            path,
            {
                "version": CACHE_VERSION,
                "fingerprint": expected,
                "ids": wanted_ids,
                "logits": logits,
                "teacher_names": ensemble.names,
                "labels": ensemble.labels,
            },
        )
        logger.info(
            "wrote soft-label cache %s (%d clips)", path, len(wanted_ids)
        )
        return cls(wanted_ids, logits, expected, multi_segment)

    def _rows(self, ids):
        missing = [i for i in ids if i not in self.index]
        if missing:
            raise KeyError(
                f"{len(missing)} clip(s) of the batch are not in the "
                f"soft-label cache: {missing[:5]}"
            )
        return torch.tensor([self.index[i] for i in ids])

    def _pick(self, ids):
        rows = self._rows(ids)
        views = self.logits.shape[1]
        choice = torch.randint(views, (len(ids),)) if views > 1 else 0
        return self.logits[rows, choice]  # [B, K, C]

    def teacher_logits(self, batch):
        """Cached teacher logits ``[K, B, C]`` of ``batch.id``."""
        logits = self._pick(batch.id)
        if self.multi_segment:
            logits = (logits + self._pick(batch.partner_id)) / 2
        return logits.transpose(0, 1).contiguous()


@torch.no_grad()
def compute_teacher_logits(
    ensemble,
    manifest_csv,
    sample_rate,
    channels,
    n_crop_views=0,
    crop_seconds=None,
    batch_size=8,
    device="cpu",
):
    """Run the teachers over every clip of a manifest.

    Returns
    -------
    torch.Tensor
        ``[N, 1 + n_crop_views, K, C]`` on the CPU, in manifest order.
    """
    if n_crop_views and not crop_seconds:
        raise ValueError("n_crop_views needs crop_seconds")
    wavs = list(read_manifest(manifest_csv).items())
    ensemble = ensemble.to(device)
    out = []
    for start in range(0, len(wavs), batch_size):
        clips = [
            load_audio(path, sample_rate, channels)
            for _, path in wavs[start : start + batch_size]
        ]
        views = [clips]
        for v in range(n_crop_views):
            n = int(crop_seconds * sample_rate)
            views.append(
                [
                    crop(
                        c,
                        n,
                        start=int(
                            v * max(len(c) - n, 0) / max(n_crop_views - 1, 1)
                        ),
                    )
                    for c in clips
                ]
            )
        per_view = []
        for view in views:
            batch = PaddedBatch([{"sig": c} for c in view])
            sig, lengths = batch.sig
            per_view.append(ensemble(sig.to(device), lengths.to(device)).cpu())
        # [V, K, B, C] -> [B, V, K, C]
        out.append(torch.stack(per_view).permute(2, 0, 1, 3))
    return torch.cat(out)


def _save_atomic(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(content, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
