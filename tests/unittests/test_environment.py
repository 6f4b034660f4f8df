"""Faults of the machine as one line: full disk, unwritable folder, device.

``/dev/full`` is a real full disk (every write fails with ENOSPC), so the
exceptions below are the ones torch and Python raise, not imitations. The
command-line entry points that use these are run in
``tests/integration/test_bad_input.py``.
"""

import errno
import pathlib

import pytest
import torch

from speechbrain_kd.environment import (
    check_device,
    environment_fault,
    one_line_faults,
)
from speechbrain_kd.hparams_preview import SettingError
from tests.unittests.test_teacher_views import recipe_train

FULL = pathlib.Path("/dev/full")
needs_dev_full = pytest.mark.skipif(
    not FULL.exists(), reason="no /dev/full on this system"
)


def raised(action):
    """The exception ``action()`` raises."""
    with pytest.raises(Exception) as error:
        action()
    return error.value


@needs_dev_full
@pytest.mark.parametrize(
    "size, seen",
    [(99, "basic_ios::clear"), (1000, "inline_container.cc:672] . unexpected")],
)
def test_torch_save_on_a_full_disk_names_the_folder(tmp_path, size, seen):
    error = raised(lambda: torch.save({"w": torch.zeros(size)}, FULL))
    assert seen in str(error)  # what the user saw before
    message = environment_fault(error, tmp_path / "run")
    assert message.startswith(
        f"no space left on the device of {tmp_path / 'run'}? torch could not "
        "finish writing a file there ("
    )
    assert "MiB free): free some space there or choose another " in message
    assert "\n" not in message


@needs_dev_full
def test_enospc_names_the_folder_of_the_file(tmp_path):
    def write():
        with open(FULL, "w") as f:
            f.write("x" * 9999)

    error = raised(write)
    assert error.errno == errno.ENOSPC and error.filename is None
    assert environment_fault(error, tmp_path).startswith(
        f"no space left on the device of {tmp_path} ("
    )
    named = OSError(errno.ENOSPC, "No space left", str(tmp_path / "a.json"))
    assert environment_fault(named, "/elsewhere").startswith(
        f"no space left on the device of {tmp_path} ("
    )
    quota = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert environment_fault(quota, tmp_path).startswith("no space left")


def test_fault_raised_while_handling_another_is_found(tmp_path):
    def wrapped():
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise ValueError("could not save the checkpoint") from error

    message = environment_fault(raised(wrapped), tmp_path)
    assert message.startswith("no space left on the device of")


def test_unwritable_folders_are_named(tmp_path):
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/x")
    assert environment_fault(denied, "/srv/x", "phase folder") == (
        "cannot write /srv/x (Permission denied): choose another phase "
        "folder, one you can write, or change its permissions"
    )
    read_only = OSError(errno.EROFS, "Read-only file system", "/mnt/x")
    assert environment_fault(read_only, "/mnt/x").startswith(
        "cannot write /mnt/x (Read-only file system): choose another "
        "--output_folder"
    )
    a_file = tmp_path / "results"
    a_file.write_text("")
    for path in (a_file, a_file / "run"):  # the file itself, or a parent
        error = raised(lambda p=path: p.mkdir(parents=True, exist_ok=True))
        assert environment_fault(error, path).startswith(
            f"cannot make the folder {path} ("
        )
        assert "a file stands where a folder should be" in (
            environment_fault(error, path)
        )


def test_other_errors_pass_through_unchanged(tmp_path):
    folder = tmp_path / "exists"
    folder.mkdir()
    others = [
        ValueError("bad setting"),
        RuntimeError("Cannot encode unknown label"),
        FileExistsError("a demo set made with other options"),  # no errno
        raised(folder.mkdir),  # EEXIST for a folder that is one
        FileNotFoundError(errno.ENOENT, "No such file", "x.wav"),
    ]
    for error in others:
        assert environment_fault(error, tmp_path) is None
        with pytest.raises(type(error)) as kept:
            with one_line_faults(tmp_path):
                raise error
        assert kept.value is error


def test_one_line_faults_exits_with_the_line(tmp_path):
    with pytest.raises(SystemExit) as stop:
        with one_line_faults(tmp_path / "out"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(stop.value.code).startswith(
        f"no space left on the device of {tmp_path / 'out'} ("
    )


def test_device_the_machine_lacks_is_refused(monkeypatch):
    check_device(None)
    check_device("cpu")
    with pytest.raises(SettingError, match=r"^--device=gpu: not a device"):
        check_device("gpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(SettingError) as error:
        check_device("cuda:0")
    assert str(error.value) == (
        "--device=cuda:0: this machine has no cuda device(s) that torch can "
        "use: leave --device out, or give --device=cpu"
    )
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    check_device("cuda")
    check_device("cuda:1")
    with pytest.raises(SettingError) as error:
        check_device("cuda:2")
    assert str(error.value) == (
        "--device=cuda:2: this machine has only 2 (CUDA_VISIBLE_DEVICES="
        "'4,5') cuda device(s) that torch can use: leave --device out, or "
        "give --device=cpu or one of cuda:0..1"
    )
    monkeypatch.setattr(torch.mps, "device_count", lambda: 0)
    with pytest.raises(SettingError, match="no mps device"):
        check_device("mps")


def test_train_py_names_an_unwritable_output_folder(tmp_path, monkeypatch):
    """The phase's entry point, in-process: ``mkdir`` is refused as a
    folder without write permission refuses it (root ignores ``chmod``)."""
    from tests.conftest import RECIPE
    from tests.unittests.test_prepare import make_layout

    data = make_layout(tmp_path / "data", "2019")
    out = tmp_path / "locked" / "out"
    mkdir = pathlib.Path.mkdir

    def refuse(path, *args, **kwargs):
        if str(path).startswith(str(out.parent)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    from speechbrain_kd.phase import phase_main

    train = recipe_train()
    with pytest.raises(SystemExit) as stop:
        phase_main(
            [
                str(RECIPE / "hparams" / "baseline.yaml"),
                f"--data_folder={data}",
                f"--output_folder={out}",
            ],
            train.TASK,
        )
    assert stop.value.code == (
        f"cannot write {out} (Permission denied): choose another "
        "--output_folder, one you can write, or change its permissions"
    )
    assert not out.parent.exists()
