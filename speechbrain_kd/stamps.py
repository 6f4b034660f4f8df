"""What a phase folder was made from: its settings and its inputs.

A finished phase is reused only while it still answers the question it was
asked. Two records vouch for that:

- the phase's **settings** (:func:`settings_record`, kept in
  ``phase_settings.json`` by ``train.py``): a folder that holds a phase's
  checkpoints or results is never written by a run with other settings
  (:func:`other_settings` names the differences);
- its **inputs** (:func:`phase_inputs`, kept in the pipeline's stamp): the
  content of the manifests it trained and tested on, a cheap stamp of the
  audio they list (:func:`~speechbrain_kd.soft_label_cache.audio_digest`, as
  the soft-label cache does) and the checkpoints of the phases it read
  (initialisation, teachers). :func:`input_changes` names what changed.
"""

import hashlib
import json
import shutil
from pathlib import Path

from speechbrain_kd.checkpoints import (
    MODEL_MODULES,
    MODEL_SPEC_FILE,
    find_best_checkpoint,
    save_folder_of,
)
from speechbrain_kd.experiment import LOCK_FILE
from speechbrain_kd.files import file_sha256, write_json_atomic
from speechbrain_kd.hparams_preview import SettingError, preview_hparams
from speechbrain_kd.soft_label_cache import audio_digest

RECORD_FILE = "phase_settings.json"
RESULTS_FILE = "test_results.json"
# Where the folder is does not change what the phase is: paths derived from
# output_folder are recorded relative to it.
OUTPUT_FOLDER = "{output_folder}"
# Settings a finished folder may be run again with: a longer schedule
# continues from its last checkpoint.
CONTINUABLE = ("number_of_epochs",)
# Settings added to a phase's YAML after runs were recorded without them,
# with the value those runs had: an earlier folder is no other run.
ADDED_SETTINGS = {"teacher_view": "clip"}


def settings_record(hparams_file, overrides):
    """The plain settings a phase runs with, wherever its folder is.

    The YAML's settings with the overrides applied and ``!ref`` resolved
    (:func:`~speechbrain_kd.hparams_preview.preview_hparams`), so that a
    value given on the command line and the same value as the YAML's
    default are one setting; ``output_folder`` and the paths made from it
    read ``{output_folder}``.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
    overrides : dict

    Returns
    -------
    dict

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.yaml"
    >>> _ = open(path, "w").write(
    ...     "lr: 0.1\\noutput_folder: results\\nlog: !ref <output_folder>/l\\n")
    >>> settings_record(path, {"output_folder": "/runs/a", "lr": 0.1})
    {'lr': 0.1, 'output_folder': '{output_folder}', 'log': '{output_folder}/l'}
    """
    return preview_hparams(
        hparams_file, dict(overrides, output_folder=OUTPUT_FOLDER)
    )


def setting_changes(before, now):
    """``"key: old then, new now"`` for every setting that differs.

    Arguments
    ---------
    before, now : dict
        Flat settings; a key missing on one side reads ``None``.

    Returns
    -------
    list of str

    Example
    -------
    >>> setting_changes({"lr": 0.1, "seed": 1}, {"lr": 0.2, "seed": 1})
    ['lr: 0.1 then, 0.2 now']
    """
    return [
        f"{key}: {before.get(key)} then, {now.get(key)} now"
        for key in sorted(set(before) | set(now))
        if before.get(key) != now.get(key)
    ]


def holds_outputs(folder):
    """Whether ``folder`` holds a phase's results or checkpoints.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> holds_outputs(folder)
    False
    >>> (folder / "save" / "CKPT+1").mkdir(parents=True)
    >>> holds_outputs(folder)
    True
    """
    folder = Path(folder)
    return (folder / RESULTS_FILE).is_file() or any(
        (folder / "save").glob("CKPT+*")
    )


def other_settings(folder, record, ignore=()):
    """Why ``folder`` must not be written by a run of ``record``, or None.

    A folder that holds a phase's results or checkpoints, made with other
    settings, would be left half-overwritten: its ``model_spec.json`` and
    ``hyperparams.yaml`` rewritten, then its checkpoints refused (another
    model) or resumed as if they were this run's. ``train.py`` and
    ``pipeline.py`` both ask this before they write anything. Another
    ``number_of_epochs`` is no refusal: the schedule continues.

    Arguments
    ---------
    folder : str or pathlib.Path
        The phase's output folder.
    record : dict
        The run's :func:`settings_record`.
    ignore : collection of str
        Settings whose change the caller handles itself (the pipeline
        tracks the teachers it wires in as inputs).

    Returns
    -------
    str or None
        ``"<folder> holds a finished <phase> made with other settings
        (<changes>)"``; None when the folder is free for this run.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> write_settings_record(folder, {"phase": "baseline", "lr": 0.1})
    >>> _ = (folder / "test_results.json").write_text("{}")
    >>> other_settings(folder, {"phase": "baseline", "lr": 0.1}) is None
    True
    >>> print(other_settings(folder, {"phase": "baseline", "lr": 0.2}))
    /... holds a finished baseline made with other settings (lr: 0.1 then, \
0.2 now)
    >>> other_settings(folder, {"phase": "baseline", "lr": 0.2}, ["lr"])
    >>> other_settings(folder, {"phase": "baseline", "lr": 0.1,
    ...                         "number_of_epochs": 3}) is None
    True

    A setting added since (:data:`ADDED_SETTINGS`) at the value the
    earlier run had is no change; another value is:

    >>> other_settings(folder, {"phase": "baseline", "lr": 0.1,
    ...                         "teacher_view": "clip"}) is None
    True
    >>> print(other_settings(folder, {"phase": "baseline", "lr": 0.1,
    ...                               "teacher_view": "student_input"}))
    /... (teacher_view: clip then, student_input now)
    """
    folder = Path(folder)
    path = folder / RECORD_FILE
    if not path.is_file() or not holds_outputs(folder):
        return None
    before = json.loads(path.read_text(encoding="utf-8"))
    added = {k: v for k, v in ADDED_SETTINGS.items() if k in record}
    before = {**added, **before}
    changes = [
        change
        for change in setting_changes(before, record)
        if change.partition(":")[0] not in (*ignore, *CONTINUABLE)
    ]
    if not changes:
        return None
    finished = (folder / RESULTS_FILE).is_file()
    state = "a finished" if finished else "an interrupted"
    changes = "; ".join(changes).replace(OUTPUT_FOLDER, str(folder))
    return (
        f"{folder} holds {state} {record.get('phase', 'phase')} made with "
        f"other settings ({changes})"
    )


def check_phase_folder(folder, record, overwrite=False):
    """Refuse to write a phase of ``record`` over another one, by hand.

    The refusal of :func:`other_settings`, with what to do instead, for a
    recipe's ``train.py``; ``overwrite`` lets it through (then
    :func:`claim_phase_folder` clears the folder).

    Arguments
    ---------
    folder : str or pathlib.Path
    record : dict
        The run's :func:`settings_record`.
    overwrite : bool
        The command line's ``--overwrite``.

    Raises
    ------
    speechbrain_kd.hparams_preview.SettingError

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> write_settings_record(folder, {"phase": "teacher", "seed": 1})
    >>> _ = (folder / "test_results.json").write_text("{}")
    >>> check_phase_folder(folder, {"phase": "teacher", "seed": 2})
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: ... (seed: 1 then, 2 now); \
use another --output_folder, or --overwrite=True to delete what it holds \
and train afresh
    >>> check_phase_folder(folder, {"phase": "teacher", "seed": 2}, True)
    """
    if not isinstance(overwrite, bool):
        raise SettingError(f"--overwrite={overwrite!r}: give True or False")
    refusal = other_settings(folder, record)
    if refusal and not overwrite:
        raise SettingError(
            f"{refusal}; use another --output_folder, or --overwrite=True to "
            "delete what it holds and train afresh"
        )


def write_settings_record(folder, record):
    """Keep ``record`` in ``folder/phase_settings.json`` (whole or not).

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> write_settings_record(folder, {"lr": 0.1})
    >>> open(folder + "/phase_settings.json").read()
    '{\\n  "lr": 0.1\\n}'
    """
    write_json_atomic(Path(folder) / RECORD_FILE, record)


def clear_phase_folder(folder):
    """Delete what a phase wrote into ``folder``, to train it afresh.

    Everything goes but the writer's lock (held by whoever clears it).

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> (folder / "save").mkdir()
    >>> _ = (folder / ".writer.lock").write_text("me")
    >>> clear_phase_folder(folder)
    >>> sorted(p.name for p in folder.iterdir())
    ['.writer.lock']
    """
    for entry in Path(folder).iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def data_fingerprint(manifests):
    """Digests of the manifests' content and of the audio they list.

    Arguments
    ---------
    manifests : list of str or pathlib.Path
        SpeechBrain CSVs with the columns ``ID`` and ``wav``.

    Returns
    -------
    dict of str -> str
        ``{<manifest file name>: SHA-256 of its content, "audio":
        SHA-256 of every listed clip's ID, size and modification time}``.

    Example
    -------
    >>> tmp = Path(getfixture("tmpdir"))
    >>> _ = (tmp / "a.wav").write_bytes(b"RIFF")
    >>> _ = (tmp / "train.csv").write_text(f"ID,wav,scene\\na,{tmp}/a.wav,x\\n")
    >>> before = data_fingerprint([tmp / "train.csv"])
    >>> sorted(before)
    ['audio', 'train.csv']
    >>> _ = (tmp / "train.csv").write_text(f"ID,wav,scene\\na,{tmp}/a.wav,y\\n")
    >>> input_changes({"data": before},
    ...               {"data": data_fingerprint([tmp / "train.csv"])})
    ['the data (train.csv)']
    """
    fingerprint = {Path(m).name: file_sha256(m) for m in manifests}
    audio = hashlib.sha256()
    for manifest in manifests:
        audio.update(audio_digest(manifest).encode())
    fingerprint["audio"] = audio.hexdigest()
    return fingerprint


def checkpoint_digest(phase_folder):
    """SHA-256 of what loading a trained phase reads.

    Its ``model_spec.json`` and the module files of its best checkpoint
    (:func:`~speechbrain_kd.checkpoints.find_best_checkpoint`): another
    checkpoint put in its place, or a retrained phase, gives another
    digest.

    Example
    -------
    >>> import torch
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> folder = getfixture("tmpdir")
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = Checkpointer(folder + "/save", {"classifier": model})
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.5}, name="a")
    >>> before = checkpoint_digest(folder)
    >>> with torch.no_grad():
    ...     _ = model.weight.add_(1)
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.6}, name="b")
    >>> checkpoint_digest(folder) == before
    False
    """
    best = find_best_checkpoint(phase_folder)
    spec = save_folder_of(phase_folder) / MODEL_SPEC_FILE
    files = [spec] if spec.is_file() else []
    files += [best.paramfiles[m] for m in MODEL_MODULES if m in best.paramfiles]
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{Path(path).name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def phase_inputs(manifests, phase_folders=()):
    """Everything a phase read besides its settings, as digests.

    Arguments
    ---------
    manifests : list of str or pathlib.Path
        The manifests it trained and tested on.
    phase_folders : list of str
        The trained phases it read (``init_from``, ``teacher_folders``).

    Returns
    -------
    dict
        ``{"data": data_fingerprint(manifests), "checkpoints": [[folder,
        checkpoint_digest(folder)], ...]}``, in the order given.

    Example
    -------
    >>> tmp = Path(getfixture("tmpdir"))
    >>> _ = (tmp / "a.wav").write_bytes(b"RIFF")
    >>> _ = (tmp / "test.csv").write_text(f"ID,wav\\na,{tmp}/a.wav\\n")
    >>> inputs = phase_inputs([tmp / "test.csv"])
    >>> sorted(inputs["data"]), inputs["checkpoints"]
    (['audio', 'test.csv'], [])
    """
    return {
        "data": data_fingerprint(manifests),
        "checkpoints": [
            [str(folder), checkpoint_digest(folder)] for folder in phase_folders
        ],
    }


def input_changes(before, now):
    """What differs between two :func:`phase_inputs`, in words.

    Arguments
    ---------
    before : dict or None
        The inputs a phase was made from (None: not recorded).
    now : dict

    Returns
    -------
    list of str
        Empty when nothing changed.

    Example
    -------
    >>> was = {"data": {"train.csv": "1", "audio": "2"},
    ...        "checkpoints": [["/r/baseline", "3"], ["/r/s1", "5"]]}
    >>> input_changes(was, was)
    []
    >>> input_changes(was, {"data": {"train.csv": "1", "audio": "9"},
    ...                     "checkpoints": [["/r/baseline", "4"]]})
    ['the data (audio files: size or modification time)', \
'the checkpoint of /r/baseline', 'no longer reads /r/s1']
    >>> input_changes(was, {"data": was["data"],
    ...                     "checkpoints": was["checkpoints"][::-1]})
    ['the order of the teachers']
    >>> input_changes(was, {"data": {"train.csv": "0", "audio": "9"},
    ...                     "checkpoints": was["checkpoints"]})
    ['the data (train.csv)']
    >>> input_changes(None, was)
    ['its inputs (not recorded by an older version)']
    """
    if not before:
        return ["its inputs (not recorded by an older version)"]
    changes = []
    data_before, data_now = before.get("data", {}), now.get("data", {})
    parts = [
        "audio files: size or modification time" if key == "audio" else key
        for key in sorted(set(data_before) | set(data_now))
        if data_before.get(key) != data_now.get(key)
    ]
    if len(parts) > 1 and parts[0].startswith("audio"):
        # The audio stamp lists the manifests' clips: name the cause only.
        parts = parts[1:]
    if parts:
        changes.append(f"the data ({', '.join(parts)})")
    ckpt_before = dict(before.get("checkpoints") or [])
    ckpt_now = dict(now.get("checkpoints") or [])
    for folder in sorted(set(ckpt_before) | set(ckpt_now)):
        if folder not in ckpt_before:
            changes.append(f"a new teacher or initialisation, {folder}")
        elif folder not in ckpt_now:
            changes.append(f"no longer reads {folder}")
        elif ckpt_before[folder] != ckpt_now[folder]:
            changes.append(f"the checkpoint of {folder}")
    if not changes and list(ckpt_before) != list(ckpt_now):
        changes.append("the order of the teachers")
    return changes


def claim_phase_folder(folder, record, overwrite=False):
    """Make ``folder`` this run's: cleared first with ``overwrite``.

    Called once the run has been checked (:func:`other_settings`) and
    holds the folder (:func:`~speechbrain_kd.experiment.sole_writer`),
    before it writes anything else; records its settings.

    Arguments
    ---------
    folder : str or pathlib.Path
    record : dict
        The run's :func:`settings_record`.
    overwrite : bool
        Delete what the folder holds (:func:`clear_phase_folder`).

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> _ = (folder / "test_results.json").write_text("{}")
    >>> claim_phase_folder(folder, {"lr": 0.2}, overwrite=True)
    >>> sorted(p.name for p in folder.iterdir())
    ['phase_settings.json']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear_phase_folder(folder)
    write_settings_record(folder, record)
