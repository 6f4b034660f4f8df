"""A phase's data: the recipe's manifests, then the datasets it uses."""

import csv
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.audio import fitting_crop
from speechbrain_kd.dataio import ClipDraws, audio_pipeline
from speechbrain_kd.labels import load_or_create_label_encoder
from speechbrain_kd.manifests import manifest_at_rate
from speechbrain_kd.phase.errors import DataPreparationError

SPLITS = ("train", "valid", "test")


def prepare_data(settings, prepare, label_column):
    """Write the manifests (once, on the main process); return the labels.

    Arguments
    ---------
    settings : dict
        The phase's plain settings (:func:`preview_hparams`); the models
        are built only once the data says how many classes it has.
    prepare : callable
        The recipe's ``prepare(settings)`` (:class:`PhaseTask`).
    label_column : str
        The column of the class names in ``train.csv``.

    Returns
    -------
    list of str
        The sorted classes of the training split.

    Raises
    ------
    DataPreparationError
        ``data preparation: <its message>`` for bad data.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> def prepare(settings):
    ...     (folder / "train.csv").write_text("ID,scene\\na,park\\nb,bus\\n")
    >>> prepare_data({"prepare_folder": folder}, prepare, "scene")
    ['bus', 'park']
    >>> def refuse(settings):
    ...     raise FileNotFoundError("meta.csv is missing")
    >>> prepare_data({"prepare_folder": folder}, refuse, "scene")
    Traceback (most recent call last):
    ...
    speechbrain_kd.phase.errors.DataPreparationError: data preparation: ...
    """
    try:
        run_on_main(prepare, args=[settings])
    except (ValueError, FileNotFoundError) as error:
        raise DataPreparationError(f"data preparation: {error}") from None
    train_csv = Path(settings["prepare_folder"]) / "train.csv"
    with open(train_csv, newline="", encoding="utf-8") as f:
        return sorted({row[label_column] for row in csv.DictReader(f)})


def dataio_prep(hparams, task):
    """Build the train, valid and test datasets of the phase.

    Clips at another rate than the model's are resampled once, here; the
    training clips are cropped at random (:class:`ClipDraws`, per clip and
    epoch), the others read whole. Sets ``hparams["label_encoder"]`` and
    ``hparams["clip_draws"]``.

    Arguments
    ---------
    hparams : dict
        The loaded phase (``prepare_folder``, ``save_folder``,
        ``sample_rate``, ``n_channels``, ``seed``, ``crop_seconds``).
    task : PhaseTask

    Returns
    -------
    datasets : dict of str -> DynamicItemDataset
    manifests : dict of str -> pathlib.Path
        The manifests at the model's rate.

    Example
    -------
    >>> import numpy as np, soundfile
    >>> folder = Path(getfixture("tmpdir"))
    >>> for split in SPLITS:
    ...     path = folder / f"{split}.wav"
    ...     soundfile.write(path, np.zeros(800), 8000)
    ...     _ = (folder / f"{split}.csv").write_text(
    ...         "ID,duration,wav,sample_rate,label\\n"
    ...         f"{split},0.1,{path},8000,dog\\n")
    >>> hparams = {"prepare_folder": folder, "save_folder": folder,
    ...     "sample_rate": 8000, "n_channels": 1, "seed": 1,
    ...     "crop_seconds": None}
    >>> from speechbrain_kd.phase.task import PhaseTask
    >>> datasets, _ = dataio_prep(hparams, PhaseTask("label", print))
    >>> item = datasets["test"][0]
    >>> item["id"], tuple(item["sig"].shape), int(item["label_encoded"])
    ('test', (800, 1), 0)
    """
    rate, channels = hparams["sample_rate"], hparams["n_channels"]
    prepared = Path(hparams["prepare_folder"])
    manifests = {}
    for split in SPLITS:
        args = [prepared / f"{split}.csv", rate, prepared / f"at_{rate}Hz"]
        run_on_main(manifest_at_rate, args=args)
        manifests[split] = manifest_at_rate(*args)
    datasets = {
        split: sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=path)
        for split, path in manifests.items()
    }
    train = datasets["train"]
    column = task.label_column
    encoder = load_or_create_label_encoder(
        Path(hparams["save_folder"]) / "label_encoder.txt",
        [row[column] for row in train.data.values()],
    )
    hparams["label_encoder"] = encoder

    @sb.utils.data_pipeline.takes(column)
    @sb.utils.data_pipeline.provides("label_encoded")
    def label_pipeline(label):
        return encoder.encode_label_torch(label)

    durations = [row["duration"] for row in train.data.values()]
    crop = fitting_crop(hparams.get("crop_seconds"), durations)
    # Crops (and a recipe's other draws) are per clip and epoch, the same
    # in every worker and process; the Brain sets the epoch.
    hparams["clip_draws"] = ClipDraws(hparams["seed"])
    sb.dataio.dataset.add_dynamic_item(
        [train],
        audio_pipeline(
            rate, channels, crop_seconds=crop, draws=hparams["clip_draws"]
        ),
    )
    sb.dataio.dataset.add_dynamic_item(
        [datasets["valid"], datasets["test"]],
        audio_pipeline(rate, channels, crop_seconds=None),
    )
    sb.dataio.dataset.add_dynamic_item(datasets.values(), label_pipeline)
    for split, dataset in datasets.items():
        extra = []
        if task.dataset_keys is not None:
            extra = task.dataset_keys(hparams, train, dataset, split)
        dataset.set_output_keys(["id", "sig", "label_encoded", *extra])
    return datasets, manifests
