"""Teachers from anywhere: inference folders (an export), hub ids through
SpeechBrain's fetching, stored logits in and out, all in one ensemble and
one fingerprinted cache; and the bad input of each."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_kd.audio import load_audio
from speechbrain_kd.checkpoints import load_trained_model
from speechbrain_kd.export import export_model
from speechbrain_kd.soft_labels import SoftLabelCache, make_soft_labels
from speechbrain_kd.speechbrain_folder import load_exported
from speechbrain_kd.stored_logits import (
    export_logits,
    import_logits,
    write_stored_logits,
)
from speechbrain_kd.teacher_sources import (
    LABELS_KEY,
    load_teacher,
    read_stored_logits,
    teacher_kind,
)
from speechbrain_kd.teachers import PosteriorAverage, TeacherEnsemble
from tests.unittests.test_export import (
    LABELS,
    RATE,
    make_phase,
    write_clips,
    write_manifest,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing here may touch the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A phase folder, its export, and a manifest of four clips."""
    tmp = tmp_path_factory.mktemp("sources")
    phase = make_phase(tmp / "phase")
    export = export_model(phase, tmp / "export")
    clips = write_clips(
        tmp / "clips", {f"c{i}": (2, RATE // 2) for i in range(4)}
    )
    manifest = write_manifest(clips, tmp / "train.csv")
    return {"phase": phase, "export": export, "manifest": manifest}


def copy_export(trained, target):
    return shutil.copytree(trained["export"], target)


def clips_of(trained):
    """The manifest's clips as one padded batch at the teachers' rate."""
    rows = [
        {"sig": load_audio(trained["manifest"].parent / "clips" / f"c{i}.wav",
                           RATE, 2)}
        for i in range(4)
    ]  # fmt: skip
    return PaddedBatch(rows).sig


def test_an_export_teaches_like_the_phase_it_came_from(trained):
    ensemble = TeacherEnsemble.from_teacher_folders(
        [trained["phase"], trained["export"]], labels=LABELS
    )
    assert teacher_kind(trained["export"]) == "inference"
    wavs, lengths = clips_of(trained)
    phase_out, export_out = ensemble(wavs, lengths)
    # The export's classifier ends with a log-softmax: log-posteriors, the
    # phase's logits up to a constant per clip, which KD does not see.
    assert torch.allclose(
        export_out, torch.log_softmax(phase_out, -1), atol=1e-5
    )
    for temperature in (1.0, 2.0, 5.0):
        assert torch.allclose(
            torch.softmax(export_out / temperature, -1),
            torch.softmax(phase_out / temperature, -1),
            atol=1e-5,
        )
    # The same outputs as SpeechBrain's own classify_batch.
    out_prob, _, _, _ = load_exported(trained["export"]).classify_batch(
        wavs, lengths
    )
    assert torch.allclose(export_out, out_prob, atol=1e-5)


def test_an_inference_teacher_gets_its_own_rate_and_channels(trained, tmp_path):
    folder = copy_export(trained, tmp_path / "mono")
    # A stock SpeechBrain classifier mixes its input to mono.
    yaml = folder / "hyperparams.yaml"
    yaml.write_text(yaml.read_text().replace("mix: keep", "mix: avg-to-mono"))
    ensemble = TeacherEnsemble.from_teacher_folders(
        [folder], labels=LABELS, sample_rate=8000
    )
    wavs = torch.randn(2, 4000, 2)
    out = ensemble(wavs)[0]
    model = load_exported(folder)
    resampled = torch.stack(
        [model.audio_normalizer(wav, 8000) for wav in wavs]
    )  # SpeechBrain's own: resample, then mix to mono
    assert resampled.shape == (2, RATE // 2)
    expected = model.classify_batch(resampled)[0]
    assert torch.allclose(out, expected, atol=1e-4)
    assert not torch.allclose(out, model.classify_batch(wavs)[0], atol=1e-3)


def test_inference_teacher_labels_are_matched_by_name(trained):
    wavs = torch.randn(2, 4000, 2)
    own = TeacherEnsemble.from_teacher_folders([trained["export"]])(wavs)[0]
    student = ["park", "airport", "bus"]
    ensemble = TeacherEnsemble.from_teacher_folders(
        [trained["export"]], labels=student
    )
    assert torch.equal(ensemble(wavs)[0], own[:, [2, 0, 1]])
    with pytest.raises(ValueError) as error:
        TeacherEnsemble.from_teacher_folders(
            [trained["export"]], labels=["airport", "bus", "tram"]
        )
    message = str(error.value)
    assert str(trained["export"]) in message
    assert "has ['park'] that it lacks" in message
    assert "lacks ['tram']" in message
    mapped = TeacherEnsemble.from_teacher_folders(
        [trained["export"]],
        labels=["airport", "bus", "tram"],
        label_map={"park": "tram"},
    )
    assert torch.allclose(mapped(wavs)[0], own, atol=1e-6)


def test_changed_inference_files_change_the_fingerprint(trained, tmp_path):
    folder = copy_export(trained, tmp_path / "teacher")

    def fingerprint():
        return TeacherEnsemble.from_teacher_folders([folder]).fingerprint()

    first = fingerprint()
    assert fingerprint() == first
    # Moving the folder keeps the content, so the cache stays valid.
    moved = shutil.copytree(folder, tmp_path / "moved")
    assert (
        TeacherEnsemble.from_teacher_folders({"0:teacher": moved}).fingerprint()
        == first
    )
    weights = torch.load(folder / "classifier.ckpt")
    weights["linear.weight"] = weights["linear.weight"] * 2
    torch.save(weights, folder / "classifier.ckpt")
    retrained = fingerprint()
    assert retrained != first
    yaml = folder / "hyperparams.yaml"
    yaml.write_text(yaml.read_text() + "\n# edited\n")
    assert fingerprint() not in (first, retrained)


def test_a_changed_teacher_is_never_reused_from_the_cache(trained, tmp_path):
    folder = copy_export(trained, tmp_path / "teacher")

    def cache(rebuild):
        ensemble = TeacherEnsemble.from_teacher_folders([folder], labels=LABELS)
        return SoftLabelCache.build_or_load(
            tmp_path / "cache.pt", ensemble, trained["manifest"], RATE, 2,
            rebuild=rebuild,
        )  # fmt: skip

    before = cache("auto").logits
    assert torch.equal(cache("never").logits, before)
    weights = torch.load(folder / "embedding_model.ckpt")
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = weights[key] + 0.5
    torch.save(weights, folder / "embedding_model.ckpt")
    with pytest.raises(RuntimeError, match="teachers changed"):
        cache("never")
    assert not torch.equal(cache("auto").logits, before)


def test_a_hub_id_is_read_from_the_local_cache_when_offline(
    trained, tmp_path, monkeypatch
):
    from huggingface_hub import constants

    # The Hugging Face cache layout a download leaves.
    repo = tmp_path / "hub" / "models--me--scenes"
    commit = "0" * 40
    shutil.copytree(trained["export"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert teacher_kind("me/scenes", fetch=True) == "hub"
    hub = TeacherEnsemble.from_teacher_folders(["me/scenes"], labels=LABELS)
    local = TeacherEnsemble.from_teacher_folders(
        [trained["export"]], labels=LABELS
    )
    wavs = torch.randn(2, 4000, 2)
    assert torch.allclose(hub(wavs), local(wavs), atol=1e-6)
    assert hub.fingerprint() != local.fingerprint()  # another name only
    assert hub.teachers[0].digest == local.teachers[0].digest


def test_an_unreachable_hub_is_not_waited_for(trained, tmp_path, monkeypatch):
    """No network: the cache is read at once, no request waits to time out."""
    import socket
    import time

    from huggingface_hub import constants

    from speechbrain_kd import hub

    def unreachable(endpoint=None, timeout=3.0):
        raise RuntimeError("cannot reach huggingface.co:443: no network?")

    repo = tmp_path / "hub" / "models--me--scenes"
    shutil.copytree(trained["export"], repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE")  # read when the hub is imported:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "check_online", unreachable)
    # A hub that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        )
        start = time.monotonic()
        teacher = load_teacher("me/scenes")
        assert time.monotonic() - start < 5  # hub requests time out at 10
    assert teacher.labels == LABELS


def test_a_hub_id_without_network_or_cache_is_one_line(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for call in (
        lambda: teacher_kind("me/scenes", fetch=True),
        lambda: load_teacher("me/scenes"),
    ):
        with pytest.raises(FileNotFoundError) as error:
            call()
        assert str(error.value) == (
            "teacher me/scenes: not a local path, and as a Hugging Face hub "
            "id it cannot be fetched (HF_HUB_OFFLINE is set: the Hugging "
            "Face Hub is off limits) nor found in the local cache "
            f"{tmp_path / 'hub'}"
        )
        assert error.value.__cause__ is None


def test_what_is_no_teacher_is_named_with_what_was_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        load_teacher(tmp_path / "empty")
    assert str(error.value) == (
        f"teacher {tmp_path / 'empty'} is neither a phase output folder (no "
        "save/model_spec.json) nor an inference folder (no hyperparams.yaml)"
    )
    (tmp_path / "logits.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="not stored logits"):
        teacher_kind(tmp_path / "logits.pt")
    with pytest.raises(FileNotFoundError, match="does not exist: looked for"):
        teacher_kind(tmp_path / "nowhere")
    assert teacher_kind("results/baseline") == "hub"  # could be one


def test_stored_logits_out_and_back_in_teach_the_same(trained, tmp_path):
    stored = tmp_path / "teacher.npz"
    assert export_logits(trained["phase"], trained["manifest"], stored) == 4
    arrays, labels = read_stored_logits(stored)
    assert labels == LABELS and sorted(arrays) == ["c0", "c1", "c2", "c3"]
    model = load_trained_model(trained["phase"])
    for clip_id, values in arrays.items():
        wav = load_audio(
            trained["manifest"].parent / "clips" / f"{clip_id}.wav", RATE, 2
        )
        with torch.no_grad():
            expected = model(wav[None])[0]
        assert np.allclose(values, expected.numpy(), atol=1e-5)
    # Stored logits beside the live teachers in one cache; the stored
    # teacher's rows equal the phase's, whatever the order of the labels.
    ensemble = TeacherEnsemble.from_teacher_folders(
        [trained["phase"], trained["export"], stored],
        labels=LABELS,
        sample_rate=RATE,
    )
    assert teacher_kind(stored) == "stored" and ensemble.needs_ids
    cache = SoftLabelCache.build_or_load(
        tmp_path / "cache.pt", ensemble, trained["manifest"], RATE, 2,
        n_crop_views=1, crop_seconds=0.25,
    )  # fmt: skip
    logits = cache.logits  # [clips, views, teachers, classes]
    assert torch.allclose(logits[:, 0, 2], logits[:, 0, 0], atol=1e-5)
    assert torch.equal(logits[:, 1, 2], logits[:, 0, 2])  # one per clip
    # Weights mix every kind.
    mixed = PosteriorAverage([2, 1, 1])(logits[:, 0].transpose(0, 1))
    assert torch.allclose(
        mixed.exp(), torch.softmax(logits[:, 0, 0], -1), atol=1e-5
    )
    with pytest.raises(ValueError, match="use soft_label_mode 'cached'"):
        make_soft_labels("online", ensemble)
    # Another label order in the file: matched by name, not by position.
    write_stored_logits(
        tmp_path / "reordered.npz",
        {k: v[[2, 0, 1]] for k, v in arrays.items()},
        [LABELS[2], LABELS[0], LABELS[1]],
    )
    reordered = TeacherEnsemble.from_teacher_folders(
        [stored, tmp_path / "reordered.npz"], labels=LABELS, sample_rate=RATE
    )
    out = reordered(torch.zeros(2, 10), ids=["c2", "c0"])
    assert torch.equal(out[0], out[1])


def test_stored_logits_bad_input_is_named(trained, tmp_path):
    ids = ["c0", "c1", "c2", "c3"]
    three = {clip_id: np.zeros(3) for clip_id in ids[:3]}
    write_stored_logits(tmp_path / "short.npz", three, LABELS)
    ensemble = TeacherEnsemble.from_teacher_folders(
        [tmp_path / "short.npz"], labels=LABELS, sample_rate=RATE
    )
    with pytest.raises(ValueError) as error:
        SoftLabelCache.build_or_load(
            tmp_path / "cache.pt", ensemble, trained["manifest"], RATE, 2
        )
    assert str(error.value).startswith(
        f"teacher '0:short.npz': {tmp_path / 'short.npz'} has no logits for "
        f"1 of the 4 clips of {trained['manifest']}, e.g. ['c3']"
    )
    assert not (tmp_path / "cache.pt").exists()
    # Keyed by file name: other clip IDs, named.
    by_file = {f"{clip_id}.wav": np.zeros(3) for clip_id in ids}
    write_stored_logits(tmp_path / "by_file.npz", by_file, LABELS)
    with pytest.raises(ValueError) as error:
        import_logits(
            tmp_path / "by_file.npz", trained["manifest"], tmp_path / "o.npz"
        )
    assert "e.g. ['c0', 'c1', 'c2', 'c3']" in str(error.value)
    assert "lacks: ['c0.wav', 'c1.wav', 'c2.wav', 'c3.wav']" in str(error.value)
    import_logits(
        tmp_path / "by_file.npz", trained["manifest"], tmp_path / "o.npz",
        key="file",
    )  # fmt: skip
    assert sorted(read_stored_logits(tmp_path / "o.npz")[0]) == ids
    # No label order stored: refused as a teacher and on import.
    np.savez(tmp_path / "bare.npz", **{k: np.zeros(3) for k in ids})
    with pytest.raises(ValueError, match="does not store its label order"):
        load_teacher(tmp_path / "bare.npz")
    with pytest.raises(ValueError, match="give it with --labels"):
        import_logits(
            tmp_path / "bare.npz", trained["manifest"], tmp_path / "o.npz"
        )
    # A given order that is not the stored one: named, never aligned.
    with pytest.raises(ValueError) as error:
        import_logits(
            tmp_path / "by_file.npz", trained["manifest"], tmp_path / "o.npz",
            labels=LABELS[::-1], key="file",
        )  # fmt: skip
    assert f"stores the label order {LABELS} but {LABELS[::-1]}" in str(
        error.value
    )
    # Other labels than the student's: refused like any teacher.
    write_stored_logits(
        tmp_path / "other.npz", three, ["airport", "bus", "tram"]
    )
    with pytest.raises(ValueError, match=r"has \['tram'\] that it lacks"):
        TeacherEnsemble.from_teacher_folders(
            [tmp_path / "other.npz"], labels=LABELS, sample_rate=RATE
        )
    # An array of the wrong size is named with its key.
    write_stored_logits(tmp_path / "ok.npz", three, LABELS)
    np.savez(
        tmp_path / "wide.npz",
        **{k: np.zeros(4) for k in ids},
        **{LABELS_KEY: np.array(LABELS)},
    )
    with pytest.raises(ValueError, match=r"logits of 'c0' have shape \(4,\)"):
        load_teacher(tmp_path / "wide.npz")


def test_import_reads_a_folder_of_per_file_arrays(trained, tmp_path):
    folder = tmp_path / "cpjku"
    folder.mkdir()
    for i in range(4):
        np.save(folder / f"c{i}.wav.npy", np.full(3, float(i)))
    with pytest.raises(ValueError, match="give it with --labels"):
        import_logits(
            folder, trained["manifest"], tmp_path / "o.npz", key="file"
        )
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    import_logits(folder, trained["manifest"], tmp_path / "o.npz", key="file")
    arrays, labels = read_stored_logits(tmp_path / "o.npz")
    assert labels == LABELS
    assert {k: float(v[0]) for k, v in arrays.items()} == {
        f"c{i}": float(i) for i in range(4)
    }


def test_command_line_errors_are_one_line(trained, tmp_path):
    result = subprocess.run(
        [
            sys.executable, "-m", "speechbrain_kd.stored_logits", "import",
            str(tmp_path / "none.npz"), str(trained["manifest"]),
            str(tmp_path / "o.npz"),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'none.npz'} does not exist\n"
    result = subprocess.run(
        [
            sys.executable, "-m", "speechbrain_kd.stored_logits", "export",
            str(trained["export"]), str(trained["manifest"]),
            str(tmp_path / "o.npz"), "--key", "file",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote the logits of 4 clips" in result.stdout
    assert sorted(read_stored_logits(tmp_path / "o.npz")[0]) == [
        f"c{i}.wav" for i in range(4)
    ]
