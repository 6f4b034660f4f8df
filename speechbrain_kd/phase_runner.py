"""Running a recipe's phases as scripts, each once for its settings and inputs.

A phase is a recipe script (``train.py <phase YAML> --key=value ...``) run
in a child process, its output streamed to the console as it comes. Its
folder gets a stamp (``pipeline_phase.json``): the digest of its settings
and the digests of its inputs (:func:`~speechbrain_kd.stamps.phase_inputs`).
A phase finished with the same settings and inputs is skipped; one made
with other settings is refused; one whose inputs changed trains again from
scratch (:class:`PhaseRunner`).

A failed phase says why itself: the runner names a fresh file in the
environment variable ``SPEECHBRAIN_KD_ERROR_FILE`` and a phase that fails
writes there ``{"error": "<one line>", "log": "<its log file or null>"}``
(:func:`run_step`). Where it could not (killed, say), the last line of its
standard error stands for it.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speechbrain.utils.run_opts import RunOptions

from speechbrain_kd.experiment import sole_writer
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.phase.errors import ERROR_FILE_ENV, read_error_report
from speechbrain_kd.stamps import (
    RESULTS_FILE,
    clear_phase_folder,
    input_changes,
    other_settings,
    phase_inputs,
    setting_changes,
    settings_record,
)

STAMP_FILE = "pipeline_phase.json"
# SpeechBrain's own run options (``--device``, ``--max_grad_norm`` ...):
# given to every phase as they are, never read as hparams.
RUN_OPTIONS = frozenset(RunOptions().as_dict()) - {
    "param_file",
    "overridden_args",
}
# How much of a child's standard error is kept for its last line.
STDERR_TAIL = 20000


class PhaseFailed(Exception):
    """A phase's script ended with an error (its own message is shown).

    Example
    -------
    >>> str(PhaseFailed("[pipeline] baseline failed (exit code 1): no data"))
    '[pipeline] baseline failed (exit code 1): no data'
    """


class PhaseRefused(Exception):
    """A phase cannot run: its folder holds other work, or an input is gone.

    Example
    -------
    >>> raise PhaseRefused("[pipeline] ensemble: no checkpoint in /r/a")
    Traceback (most recent call last):
    ...
    speechbrain_kd.phase_runner.PhaseRefused: [pipeline] ensemble: ...
    """


def run_step(name, command, cwd=None):
    """Run one step's script; on failure raise :class:`PhaseFailed`.

    Its output goes to the console as it comes. A step that fails names
    its error (and its log) in the file named by ``SPEECHBRAIN_KD_ERROR_FILE``
    (JSON ``{"error": ..., "log": ...}``); a step that wrote none (killed,
    or a script that does not write it) is known by the last line of its
    standard error and its exit code.

    Arguments
    ---------
    name : str
        The step, for the message.
    command : list of str
        Its command line.
    cwd : str or pathlib.Path, optional
        Where it runs.

    Raises
    ------
    PhaseFailed
        ``[pipeline] <name> failed (exit code N): <error>``, then
        ``its log: <file>`` on a line of its own where it has one.

    Example
    -------
    >>> run_step("ok", [sys.executable, "-c", "print('hello')"])
    >>> run_step("bad", [sys.executable, "-c", "raise SystemExit('no data')"])
    Traceback (most recent call last):
    ...
    speechbrain_kd.phase_runner.PhaseFailed: [pipeline] bad failed \
(exit code 1): no data
    """
    with tempfile.TemporaryDirectory(prefix="phase-error-") as folder:
        error_file = Path(folder) / "error.json"
        env = dict(os.environ, **{ERROR_FILE_ENV: str(error_file)})
        # What we printed comes before what the step prints.
        sys.stdout.flush()
        sys.stderr.flush()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stderr=subprocess.PIPE
        )
        tail = b""
        while chunk := os.read(process.stderr.fileno(), 65536):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            tail = (tail + chunk)[-STDERR_TAIL:]
        process.stderr.close()
        process.wait()
        if process.returncode == 0:
            return
        report = read_error_report(error_file)
    if report is None:
        lines = [
            line.strip()
            for line in tail.decode(errors="replace").splitlines()
            if line.strip()
        ]
        report = {"error": (lines or ["(no message)"])[-1], "log": None}
    log = report.get("log")
    where = f"\n  its log: {log}" if log else ""
    raise PhaseFailed(
        f"[pipeline] {name} failed (exit code {process.returncode}): "
        f"{report['error']}{where}"
    )


def changed_settings(previous, settings):
    """The settings that differ between a phase's stamp and this run.

    Example
    -------
    >>> changed_settings(
    ...     {"settings": {"overrides": {"lr": 0.1, "seed": 1}}},
    ...     {"overrides": {"lr": 0.2, "seed": 1}})
    'lr: 0.1 then, 0.2 now'
    """

    def flat(stamped):
        parts = ("hparams", "run_opts", "processes")
        return {
            **{part: stamped.get(part) for part in parts},
            **(stamped.get("overrides") or {}),
        }

    changes = setting_changes(
        flat(previous.get("settings", {})), flat(settings)
    )
    return "; ".join(changes) or "a stamp of another format"


class PhaseRunner:
    """Run a recipe's phases, each once for its settings and inputs.

    Arguments
    ---------
    script : str or pathlib.Path
        The recipe's phase script (run from its folder).
    manifests : list of pathlib.Path
        The manifests every phase trains and tests on (its inputs).
    run_opts : list of str
        SpeechBrain run options (``--device=cpu``) for every phase.
    processes : int
        Processes per phase (``torchrun`` on this machine above 1).

    Example
    -------
    >>> tmp = Path(getfixture("tmpdir"))
    >>> _ = (tmp / "phase.yaml").write_text("lr: 0.1\\noutput_folder: x\\n")
    >>> _ = (tmp / "test.csv").write_text("ID,wav\\n")
    >>> script = tmp / "phase.py"
    >>> _ = script.write_text(
    ...     "import sys\\n"
    ...     "out = sys.argv[2].split('=', 1)[1].strip('\\"')\\n"
    ...     "open(out + '/test_results.json', 'w').write('{}')\\n")
    >>> runner = PhaseRunner(script, [tmp / "test.csv"])
    >>> overrides = {"output_folder": str(tmp / "out")}
    >>> (tmp / "out").mkdir()
    >>> seconds = runner.run("one", tmp / "phase.yaml", overrides)
    [pipeline] one: ...phase.py .../phase.yaml --output_folder=".../out"
    >>> seconds == runner.run("one", tmp / "phase.yaml", overrides)
    [pipeline] one: complete, skipped (.../out)
    True
    """

    def __init__(self, script, manifests, run_opts=(), processes=1):
        self.script = Path(script)
        self.manifests = list(manifests)
        self.run_opts = list(run_opts)
        self.processes = processes

    def command(self, hparams_file, overrides):
        """The command line of one phase.

        Example
        -------
        >>> runner = PhaseRunner("train.py", [], ["--device=cpu"])
        >>> runner.command("a.yaml", {"lr": 0.1, "pair": ["x", "y"]})[1:]
        ['train.py', 'a.yaml', '--lr=0.1', '--pair=["x", "y"]', '--device=cpu']
        """
        command = [sys.executable]
        if self.processes > 1:  # torchrun, one node
            command += [
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={self.processes}",
            ]
        command.append(str(self.script))
        command.append(str(hparams_file))
        command += [f"--{k}={json.dumps(v)}" for k, v in overrides.items()]
        return command + self.run_opts

    def run(
        self, name, hparams_file, overrides, wiring=(), done_file=RESULTS_FILE
    ):
        """Run the phase into ``overrides["output_folder"]`` unless finished.

        A finished phase is skipped while its settings and its inputs (the
        data, the checkpoints of the phases it reads) are those of its
        stamp; other settings are refused, other inputs train it again.

        Arguments
        ---------
        name : str
            The phase, for messages.
        hparams_file : pathlib.Path
            Its YAML.
        overrides : dict
            Its settings, ``output_folder`` among them.
        wiring : collection of str
            The keys of ``overrides`` set from the phases before it
            (``init_from``, ``teacher_folders``): its inputs, not its
            settings, so that other teachers train it again.
        done_file : str
            The file a finished phase has written in its folder.

        Returns
        -------
        float
            The seconds it took (when it ran, for a skipped one).

        Raises
        ------
        PhaseRefused
            Its folder holds a phase of other settings, or an input is gone.
        PhaseFailed
            Its script failed.
        """
        folder = Path(overrides["output_folder"])
        wiring = set(wiring)
        # The check train.py makes: a folder trained by hand with other
        # settings is refused before the stamp is written into it.
        refusal = other_settings(
            folder, settings_record(hparams_file, overrides), ignore=wiring
        )
        if refusal:
            raise PhaseRefused(
                f"{refusal}; use another --output_folder or delete it"
            )
        stamp = folder / STAMP_FILE
        settings = {
            "hparams": Path(hparams_file).name,
            "overrides": overrides,
            "run_opts": self.run_opts,
        }
        if self.processes > 1:  # a stamp of one process stays as it was
            settings["processes"] = self.processes
        own = {k: v for k, v in overrides.items() if k not in wiring}
        digest = hashlib.sha256(
            json.dumps(dict(settings, overrides=own), sort_keys=True).encode()
        ).hexdigest()
        read = [overrides.get("init_from")]
        read += overrides.get("teacher_folders") or []
        try:
            inputs = phase_inputs(self.manifests, [f for f in read if f])
        except (FileNotFoundError, ValueError) as error:  # a teacher gone
            raise PhaseRefused(f"[pipeline] {name}: {error}") from None
        finished = (folder / done_file).is_file()
        if stamp.is_file():
            previous = json.loads(stamp.read_text())
            if previous.get("digest") != digest:
                state = "a finished" if finished else "an interrupted"
                raise PhaseRefused(
                    f"{folder} holds {state} {name} made with other "
                    f"settings ({changed_settings(previous, settings)}); "
                    "use another --output_folder or delete it"
                )
            changes = input_changes(previous.get("inputs"), inputs)
            if changes:
                print(
                    f"[pipeline] {name}: its inputs changed since it ran "
                    f"({'; '.join(changes)}): running it again from scratch "
                    f"({folder})",
                    flush=True,
                )
                with sole_writer(folder):
                    clear_phase_folder(folder)
            elif finished and previous.get("seconds") is not None:
                print(f"[pipeline] {name}: complete, skipped ({folder})")
                return previous["seconds"]
        # Written first, so that an interrupted phase is known by its settings.
        record = {"digest": digest, "settings": settings, "inputs": inputs}
        write_json_atomic(stamp, {**record, "seconds": None})
        command = self.command(hparams_file, overrides)
        print(f"[pipeline] {name}: {' '.join(command)}", flush=True)
        start = time.time()
        run_step(name, command, cwd=self.script.parent)
        seconds = time.time() - start
        write_json_atomic(stamp, {**record, "seconds": seconds})
        return seconds
