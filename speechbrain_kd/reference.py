"""A linear reference: logistic regression on log-mel band statistics.

Every result table of the project has this row beside the deep models, so
that a network that learned less than a linear model on the simplest
features is seen at once. The features are the mean and the standard
deviation over time of each log-mel band (SpeechBrain's ``Fbank``, the
channels averaged), standardised; the classifier is scikit-learn's
``LogisticRegression``, its inverse regularisation ``C`` chosen on the
validation split, the same train/valid/test manifests as the networks.
"""

import csv
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from speechbrain.lobes.features import Fbank

from speechbrain_kd.audio import load_audio
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.metrics import classification_report, write_predictions
from speechbrain_kd.models.logmel_cnn import default_n_fft

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)
WINDOW_MS = 25.0


def logmel_statistics(wav, sample_rate, n_mels=40):
    """Mean and standard deviation over time of each log-mel band.

    Arguments
    ---------
    wav : torch.Tensor
        ``[time]`` or ``[time, channels]`` (channels are averaged).
    sample_rate : int
        Rate of ``wav``.
    n_mels : int
        Mel bands.

    Returns
    -------
    numpy.ndarray
        ``[2 * n_mels]``: the band means, then the band deviations.

    Example
    -------
    >>> logmel_statistics(torch.randn(8000, 2), 8000, n_mels=20).shape
    (40,)
    """
    if wav.dim() == 2:
        wav = wav.mean(dim=-1)
    with torch.no_grad():
        bands = _fbank(sample_rate, n_mels)(wav.float().unsqueeze(0))[0]
    return torch.cat([bands.mean(dim=0), bands.std(dim=0)]).numpy()


@functools.cache
def _fbank(sample_rate, n_mels):
    """One filterbank per rate and size, not one per clip."""
    return Fbank(
        sample_rate=sample_rate,
        n_mels=n_mels,
        n_fft=default_n_fft(WINDOW_MS, sample_rate),
        win_length=WINDOW_MS,
    )


def manifest_features(manifest_csv, sample_rate, n_mels=40):
    """The statistics of every clip of a SpeechBrain manifest.

    Arguments
    ---------
    manifest_csv : str or Path
        With ``ID``, ``wav`` and ``scene`` columns.
    sample_rate : int
        Clips are read at this rate.
    n_mels : int
        Mel bands.

    Returns
    -------
    tuple
        ``(ids, features [clips, 2 * n_mels], scenes)``.

    Example
    -------
    >>> import soundfile
    >>> folder = Path(getfixture("tmpdir"))
    >>> soundfile.write(folder / "a.wav", np.zeros((8000, 2)), 8000)
    >>> row = f"a,{folder}/a.wav,park"
    >>> _ = (folder / "m.csv").write_text(f"ID,wav,scene\\n{row}\\n")
    >>> ids, features, scenes = manifest_features(folder / "m.csv", 8000, 8)
    >>> ids, features.shape, scenes
    (['a'], (1, 16), ['park'])
    """
    with open(manifest_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{manifest_csv} lists no clip")
    features = [
        logmel_statistics(
            load_audio(row["wav"], sample_rate, 1), sample_rate, n_mels
        )
        for row in rows
    ]
    return (
        [row["ID"] for row in rows],
        np.stack(features),
        [row["scene"] for row in rows],
    )


def fit_linear_reference(train, valid, Cs=DEFAULT_CS):
    """Fit the reference on ``train``, choosing ``C`` on ``valid``.

    Arguments
    ---------
    train, valid : tuple
        ``(features, scenes)`` each.
    Cs : sequence of float
        The inverse regularisations tried; ties go to the smallest.

    Returns
    -------
    tuple
        ``(model, C, valid_accuracy)``: a fitted scikit-learn pipeline
        (standardisation, then logistic regression).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(0, 1, (40, 3)) + np.repeat([[0], [3]], 20, axis=0)
    >>> y = ["a"] * 20 + ["b"] * 20
    >>> model, C, accuracy = fit_linear_reference((x, y), (x, y))
    >>> accuracy
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for C in sorted(Cs):
        model = make_pipeline(
            StandardScaler(),
            # lbfgs: deterministic, so no seed is needed.
            LogisticRegression(C=C, solver="lbfgs", max_iter=5000),
        )
        model.fit(*train)
        accuracy = float(model.score(*valid))
        if best is None or accuracy > best[2]:
            best = (model, C, accuracy)
    return best


def evaluate_linear_reference(
    prepare_folder,
    sample_rate,
    labels,
    out_file,
    n_mels=40,
    Cs=DEFAULT_CS,
    predictions_file=None,
):
    """Fit the reference on a phase's manifests; write its test results.

    The results (:func:`~speechbrain_kd.metrics.classification_report`
    of the test split, with ``C``, ``valid_accuracy`` and the features
    used) are written whole to ``out_file``, and the per-clip predictions
    (:func:`~speechbrain_kd.metrics.write_predictions`) to
    ``predictions_file``, the file the paired comparisons read; both are
    reused when the manifests and the settings are those of the results
    (a stamp of both).

    Arguments
    ---------
    prepare_folder : str or Path
        Holds ``train.csv``, ``valid.csv`` and ``test.csv``.
    sample_rate : int
        Clips are read at this rate.
    labels : sequence of str
        The scenes in the order of the confusion matrix.
    out_file : str or Path
        Where the results go (JSON).
    n_mels : int
        Mel bands.
    Cs : sequence of float
        The inverse regularisations tried on the validation split.
    predictions_file : str or Path, optional
        Default: ``test_predictions.csv`` beside ``out_file``.

    Returns
    -------
    dict
        The results.

    Example
    -------
    >>> import soundfile
    >>> folder = Path(getfixture("tmpdir"))
    >>> rng = np.random.default_rng(0)
    >>> for split in ("train", "valid", "test"):
    ...     rows = ["ID,wav,scene"]
    ...     for k in range(8):  # quiet and loud noise
    ...         scene, gain = ("park", 0.01) if k % 2 else ("metro", 0.5)
    ...         wav = folder / f"{split}{k}.wav"
    ...         soundfile.write(wav, gain * rng.standard_normal(4000), 8000)
    ...         rows.append(f"{split}{k},{wav},{scene}")
    ...     _ = (folder / f"{split}.csv").write_text("\\n".join(rows) + "\\n")
    >>> results = evaluate_linear_reference(
    ...     folder, 8000, ["metro", "park"], folder / "ref.json", n_mels=8)
    >>> results["accuracy"], results["labels"]
    (1.0, ['metro', 'park'])
    >>> (folder / "test_predictions.csv").read_text().splitlines()[0]
    'ID,target,prediction,metro,park'
    """
    prepare_folder = Path(prepare_folder)
    manifests = [
        prepare_folder / f"{s}.csv" for s in ("train", "valid", "test")
    ]
    settings = {
        "model": "logistic regression on log-mel band mean and std",
        "sample_rate": int(sample_rate),
        "n_mels": int(n_mels),
        "Cs": [float(C) for C in Cs],
        "manifests": hashlib.sha256(
            b"".join(path.read_bytes() for path in manifests)
        ).hexdigest(),
    }
    out_file = Path(out_file)
    predictions_file = Path(
        predictions_file or out_file.with_name("test_predictions.csv")
    )
    if out_file.is_file() and predictions_file.is_file():
        previous = json.loads(out_file.read_text())
        if previous.get("settings") == settings:
            return previous
    splits = {
        path.stem: manifest_features(path, sample_rate, n_mels)
        for path in manifests
    }
    model, C, valid_accuracy = fit_linear_reference(
        splits["train"][1:], splits["valid"][1:], Cs
    )
    ids, features, scenes = splits["test"]
    labels = list(labels)
    unknown = sorted(set(scenes) - set(labels))
    if unknown:
        raise ValueError(
            f"{manifests[2]} has scenes {unknown} that are not among {labels}"
        )
    # The posteriors in label order (0 for a scene absent from training);
    # the prediction is their argmax, as model.predict gives.
    posteriors = np.zeros((len(scenes), len(labels)))
    columns = [labels.index(scene) for scene in model.classes_]
    posteriors[:, columns] = model.predict_proba(features)
    targets = [labels.index(s) for s in scenes]
    results = classification_report(
        targets, posteriors.argmax(axis=1).tolist(), labels
    )
    results.update(C=C, valid_accuracy=valid_accuracy, settings=settings)
    write_predictions(predictions_file, ids, targets, posteriors, labels)
    write_json_atomic(out_file, results)
    return results
