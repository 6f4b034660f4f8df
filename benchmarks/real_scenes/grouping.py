"""Near-copies: files of one recording are one source group.

Game data often carries near-copies: two mixes of one rain recording,
loops cut from one take, the same file under two names. Files are joined
into one group when (a) they are byte-identical, (b) their names differ
only by a trailing number in one folder of one package and the copyright
file credits them alike, (c) :data:`SAME_SOURCE` says so from the
copyright notes, or (d) their audio matches (:func:`similarity` at least
:data:`DUPLICATE_THRESHOLD`), transitively (scipy's connected components).

The threshold: gain, EQ per band, re-encoding, resampling and time shifts
leave the similarity of two copies near 1 (0.96 to 1.00 for the copies in
the default build); there the 2573 pairs of files from *different*
packages, certainly different recordings, score at most 0.32 (99th
percentile 0.23), and 0.40 is above all of those with a margin. It was
calibrated on a float64 filterbank (:func:`mel_filterbank`) and scipy's
polyphase resampler (:func:`.audio.resample`).
"""

import fnmatch
import functools
import itertools

import numpy as np
import torch
import torchaudio
from scipy.ndimage import uniform_filter1d
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from .audio import resample
from .scenes import stem_key

# Files that are one source by their credits, not by their audio:
# (package, pattern, reason).
SAME_SOURCE = (
    (
        "redeclipse",
        "waterfall*.ogg",
        "the copyright file credits all waterfall*.ogg to three Freesound "
        "takes by Tim Kahn (28656, 28657, 28659) without saying which file "
        "comes from which",
    ),
)

# Duplicate test (the module docstring gives the choice of threshold).
DUPLICATE_THRESHOLD = 0.40
FP_RATE = 16000
FP_NFFT = 512
FP_HOP = 320  # 20 ms
FP_BANDS = 24
FP_FMIN = 100.0
FP_FMAX = 7500.0
FP_RANGE_DB = 80.0
FP_SMOOTH = 13  # frames (0.26 s): slower level changes are removed
PROBE_SECONDS = 5.0
PROBES = 6
FP_PHASES = 4  # sub-frame offsets searched
FP_SILENCE_DBFS = -90.0  # quieter frames are not compared
PROBE_MIN_FRAMES = 50  # 1 s: the shortest probe


@functools.cache
def mel_filterbank(n_fft, rate, bands, fmin, fmax):
    """Triangular HTK-mel filters, ``(n_fft // 2 + 1, bands)``, float64.

    torchaudio's :func:`~torchaudio.functional.melscale_fbanks`, computed
    in float64 as the threshold was calibrated (in float32 the weights
    move by up to 2e-6).

    Example
    -------
    >>> fb = mel_filterbank(512, 16000, 24, 100.0, 7500.0)
    >>> fb.shape, fb.dtype, bool((fb.sum(axis=0) > 0).all())
    ((257, 24), dtype('float64'), True)
    >>> fb.flags.writeable  # one copy serves every call
    False
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # melscale_fbanks takes no dtype
    try:
        bank = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, fmin, fmax, bands, rate, mel_scale="htk"
        )
    finally:
        torch.set_default_dtype(previous)
    bank = bank.numpy()
    bank.flags.writeable = False
    return bank


def fingerprint(mono, rate, offset=0):
    """Log-mel fingerprint whose fine time structure identifies a recording.

    The mono signal is taken to 16 kHz and its first ``offset`` samples
    dropped; 24 mel bands (100-7500 Hz) of 512-point frames every 20 ms, in
    dB, floored 80 dB under the peak; the moving average over 13 frames
    (0.26 s) is subtracted in each band, and then the band mean. What is
    left is the fast texture of the recording (drops, bubbles, leaves): a
    gain or a static EQ only shifts a band, which the subtraction removes.
    Frames of (near) digital silence, RMS under -90 dBFS, and the 6 frames
    on each side of them are NaN: a step out of silence looks alike in any
    two files.

    Arguments
    ---------
    mono : numpy.ndarray
        Samples, ``(time,)``.
    rate : int
    offset : int
        Samples at 16 kHz to drop first (for sub-frame shifts).

    Returns
    -------
    numpy.ndarray
        ``(bands, frames)``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(16000)
    >>> x[8000:] = 0.0
    >>> f = fingerprint(x, 16000)
    >>> f.shape, int(np.isnan(f[0]).sum())  # the silent half, and its edge
    ((24, 49), 30)
    """
    x = resample(np.asarray(mono, dtype=np.float64), rate, FP_RATE)
    x = x[int(offset) :]
    if len(x) < FP_NFFT:
        x = np.pad(x, (0, FP_NFFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, FP_NFFT)[::FP_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(FP_NFFT), axis=1)) ** 2
    bank = mel_filterbank(FP_NFFT, FP_RATE, FP_BANDS, FP_FMIN, FP_FMAX)
    mel = power @ bank
    level = 10.0 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-20))
    quiet = (level < FP_SILENCE_DBFS).astype(float)
    quiet = uniform_filter1d(quiet, FP_SMOOTH, mode="nearest") > 0
    db = 10.0 * np.log10(np.maximum(mel, 1e-20))
    db = np.maximum(db, db.max() - FP_RANGE_DB).T
    fast = db - uniform_filter1d(db, FP_SMOOTH, axis=1, mode="nearest")
    if quiet.all():
        return np.full_like(fast, np.nan)
    fast = fast - fast[:, ~quiet].mean(axis=1, keepdims=True)
    fast[:, quiet] = np.nan
    return fast


def fingerprints(mono, rate):
    """:func:`fingerprint` at ``FP_PHASES`` offsets a fraction of a frame
    step apart (0, 80, 160 and 240 samples at 16 kHz), so that a copy
    shifted by any number of samples meets one of them within 40 samples.

    Example
    -------
    >>> [f.shape for f in fingerprints(np.ones(16000), 16000)]
    [(24, 49), (24, 49), (24, 48), (24, 48)]
    """
    x = resample(np.asarray(mono, dtype=np.float64), rate, FP_RATE)
    step = FP_HOP // FP_PHASES
    return [fingerprint(x, FP_RATE, k * step) for k in range(FP_PHASES)]


class _Target:
    """A fingerprint ready to be searched: NaN frames zeroed and marked,
    running sums for the windows' variance, spectra by FFT size."""

    def __init__(self, feats):
        bad = np.isnan(feats).any(axis=0)
        self.feats = np.where(bad, 0.0, feats)
        self.frames = feats.shape[1]
        zero = np.zeros((feats.shape[0], 1))
        self.c1 = np.concatenate([zero, np.cumsum(self.feats, axis=1)], 1)
        self.c2 = np.concatenate(
            [zero, np.cumsum(self.feats * self.feats, axis=1)], 1
        )
        self.bad = np.concatenate([[0], np.cumsum(bad)])
        self.spectra = {}

    def spectrum(self, n):
        if n not in self.spectra:
            self.spectra[n] = np.fft.rfft(self.feats, n, axis=1)
        return self.spectra[n]

    def windows(self, length):
        """Variance (summed over bands) of every window, and which count."""
        s1 = self.c1[:, length:] - self.c1[:, :-length]
        s2 = self.c2[:, length:] - self.c2[:, :-length]
        var = np.sum(s2 - s1 * s1 / length, axis=0)
        clean = (self.bad[length:] - self.bad[:-length]) == 0
        return var, clean & (var > 1e-9)


def _probes(feats):
    """Up to ``PROBES`` evenly spaced windows without NaN: (centred window,
    norm). Windows last ``PROBE_SECONDS``, or the longest run of clean
    frames when that is shorter (down to 1 s)."""
    clean = ~np.isnan(feats).any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], clean, [0]])))
    runs = edges[1::2] - edges[::2]
    longest = int(runs.max()) if len(runs) else 0
    length = min(int(round(PROBE_SECONDS * FP_RATE / FP_HOP)), longest)
    if length < min(PROBE_MIN_FRAMES, feats.shape[1]) or length < 2:
        return []
    bad = np.concatenate([[0], np.cumsum(~clean)])
    starts = np.flatnonzero(bad[length:] - bad[:-length] == 0)
    picks = starts[np.linspace(0, len(starts) - 1, PROBES).round().astype(int)]
    probes = []
    for start in np.unique(picks):
        p = feats[:, start : start + length]
        p = p - p.mean(axis=1, keepdims=True)
        norm = float(np.sqrt(np.sum(p * p)))
        if norm > 0:
            probes.append((p, norm))
    return probes


def _best_match(probes, targets):
    """Highest NCC of any probe against any window of any target (phase)."""
    best, spectra = -1.0, {}
    for target in targets:
        for index, (p, norm) in enumerate(probes):
            length = p.shape[1]
            if length > target.frames:
                continue
            n = 1 << (target.frames + length - 1).bit_length()
            if (index, n) not in spectra:
                spectra[(index, n)] = np.conj(np.fft.rfft(p, n, axis=1))
            product = target.spectrum(n) * spectra[(index, n)]
            num = np.fft.irfft(product.sum(axis=0), n)
            num = num[: target.frames - length + 1]
            var, ok = target.windows(length)
            if ok.any():
                r = num[ok] / (norm * np.sqrt(var[ok]))
                best = max(best, float(np.clip(r, -1.0, 1.0).max()))
    return best


def _as_phases(prints):
    return [prints] if isinstance(prints, np.ndarray) else list(prints)


def similarity(a, b):
    """How much two recordings look like one, in [-1, 1].

    The highest normalised cross-correlation, over all time shifts, of up
    to six evenly spaced 5-s probes of each one's fingerprint against every
    window of the other's (band means removed in each window; windows that
    touch a NaN frame are not used). ``a`` and ``b`` are fingerprints or
    lists of phases (:func:`fingerprints`): probes come from the first
    phase and meet every phase of the other.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.standard_normal(8 * 16000)
    >>> copy = 0.3 * np.roll(x, 4321)  # quieter, shifted by 13.5 frames
    >>> other = rng.standard_normal(8 * 16000)
    >>> fx, fc, fo = (fingerprints(s, 16000) for s in (x, copy, other))
    >>> similarity(fx, fc) > 0.9, similarity(fx, fo) < 0.2
    (True, True)
    """
    a, b = _as_phases(a), _as_phases(b)
    return max(
        _best_match(_probes(a[0]), [_Target(f) for f in b]),
        _best_match(_probes(b[0]), [_Target(f) for f in a]),
    )


def group_sources(prints, threshold=DUPLICATE_THRESHOLD, links=()):
    """Join files into source groups: audio matches and given links.

    Arguments
    ---------
    prints : dict
        Key (any sortable) -> fingerprint, or list of phases
        (:func:`fingerprints`).
    threshold : float
        Pairs whose :func:`similarity` is at least this are one source.
    links : iterable of (key, key)
        Pairs that are one source whatever their audio.

    Returns
    -------
    groups : list of tuple
        Sorted tuples of keys, sorted; joined transitively.
    scores : dict
        ``(key, key)`` (sorted pair) -> similarity, for every pair.

    Example
    -------
    >>> rng = np.random.default_rng(2)
    >>> x = rng.standard_normal(6 * 16000)
    >>> prints = {
    ...     "a": fingerprints(x, 16000),
    ...     "b": fingerprints(1.5 * np.roll(x, 999), 16000),
    ...     "c": fingerprints(rng.standard_normal(6 * 16000), 16000),
    ...     "d": fingerprints(rng.standard_normal(6 * 16000), 16000),
    ... }
    >>> group_sources(prints, links=[("c", "d")])[0]
    [('a', 'b'), ('c', 'd')]
    """
    keys = sorted(prints)
    phases = {key: _as_phases(prints[key]) for key in keys}
    probes = {key: _probes(phases[key][0]) for key in keys}
    directed = {}
    for target_key in keys:  # one target's spectra in memory at a time
        targets = [_Target(f) for f in phases[target_key]]
        for key in keys:
            if key != target_key:
                directed[(key, target_key)] = _best_match(probes[key], targets)
    scores = {
        (a, b): max(directed[(a, b)], directed[(b, a)])
        for a, b in itertools.combinations(keys, 2)
    }
    pairs = [pair for pair, score in scores.items() if score >= threshold]
    return _components(keys, [*pairs, *links]), scores


def _components(keys, pairs):
    """The connected components of ``pairs`` over sorted ``keys``, as sorted
    tuples, sorted."""
    index = {key: i for i, key in enumerate(keys)}
    rows = [index[a] for a, _ in pairs]
    cols = [index[b] for _, b in pairs]
    graph = coo_array(
        ([1] * len(pairs), (rows, cols)), shape=(len(keys), len(keys))
    )
    _, labels = connected_components(graph, directed=False)
    members = {}
    for key, label in zip(keys, labels, strict=True):
        members.setdefault(label, []).append(key)
    return sorted(tuple(group) for group in members.values())


def _links(sources, same_source):
    """Pairs joined without audio: identical bytes, numbered loops, notes."""
    links, by_digest, by_stem, by_note = [], {}, {}, {}
    for key in sorted(sources):
        short, rel = key
        info = sources[key]
        by_digest.setdefault(info["sha256"], []).append(key)
        credit = (info["licence"], tuple(info["copyright"]))
        by_stem.setdefault((short, stem_key(rel), credit), []).append(key)
        for package, pattern, _ in same_source:
            if package == short and fnmatch.fnmatchcase(rel, pattern):
                by_note.setdefault((package, pattern), []).append(key)
    for table in (by_digest, by_stem, by_note):
        for keys in table.values():
            links += [(keys[0], other) for other in keys[1:]]
    return links


def _group_names(groups):
    names, used = {}, set()
    for members in groups:
        short, rel = members[0]
        name = f"{short}_{stem_key(rel)}"
        unique, n = name, 2
        while unique in used:
            unique, n = f"{name}_{n}", n + 1
        used.add(unique)
        for key in members:
            names[key] = unique
    return names
