"""The hub's command line: its errors say what the command line can do."""

import subprocess
import sys

from speechbrain_kd.hub import EXPORT_FILES


def test_push_without_a_token_names_only_what_the_command_line_can_do(
    tmp_path,
):
    export = tmp_path / "export"
    export.mkdir()
    for name in EXPORT_FILES:  # only their presence is checked first
        (export / name).write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HOME": str(tmp_path / "hf"),  # no saved login token
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "speechbrain_kd.hub", "push", export, "me/x"],
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: no Hugging Face token: set HF_TOKEN or run `hf auth login`\n"
    )
