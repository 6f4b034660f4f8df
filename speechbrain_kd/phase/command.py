"""A recipe's command line: parse it, check every run, run them."""

from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.environment import check_device, one_line_faults
from speechbrain_kd.experiment import sole_writer
from speechbrain_kd.phase.errors import USER_ERRORS, ErrorReport
from speechbrain_kd.phase.run import run_phase
from speechbrain_kd.phase.settings import command_line_overrides, phase_settings
from speechbrain_kd.stamps import (
    check_phase_folder,
    claim_phase_folder,
    settings_record,
)


def phase_main(argv, task):
    """Parse a recipe's command line and run its phase (once per run).

    ``train.py <hparams.yaml> [--setting=value ...] [--overwrite=True]``
    with SpeechBrain's run options. Every run's settings and folder are
    checked before any is written; a user error (:data:`USER_ERRORS`)
    ends it with one line, and any error that ends it is written to the
    file :data:`ERROR_FILE_ENV` names (:class:`ErrorReport`).

    Arguments
    ---------
    argv : list of str
        The command line, without the script.
    task : PhaseTask

    Example
    -------
    >>> from speechbrain_kd.phase.task import PhaseTask
    >>> path = str(getfixture("tmpdir")) + "/phase.yaml"
    >>> _ = open(path, "w").write("output_folder: out\\nlr: 0.1\\n")
    >>> phase_main([path, "--lr=-1"], PhaseTask("label", print))
    Traceback (most recent call last):
    ...
    SystemExit: .../phase.yaml: lr=-1 must be a number > 0
    """
    with ErrorReport() as report:
        hparams_file, run_opts, overrides = sb.parse_arguments(argv)
        sb.utils.distributed.ddp_init_group(run_opts)
        overrides = command_line_overrides(overrides, argv)
        overwrite = overrides.pop("overwrite", False)
        try:
            check_device(run_opts.get("device"))  # before anything is written
            first = phase_settings(hparams_file, overrides, task)
            runs = [overrides]
            if task.runs is not None:
                runs = task.runs(hparams_file, overrides)
            checked = []
            for run in runs:
                settings = first
                if run != overrides:
                    settings = phase_settings(hparams_file, run, task)
                folder = Path(settings["output_folder"]).resolve()
                record = settings_record(hparams_file, run)
                check_phase_folder(folder, record, overwrite)
                checked.append((run, settings, folder, record))
            for run, settings, folder, record in checked:
                report.log = folder / "log.txt"
                with one_line_faults(folder), sole_writer(folder):
                    run_on_main(
                        claim_phase_folder, args=[folder, record, overwrite]
                    )
                    run_phase(hparams_file, run_opts, run, task, settings)
        except USER_ERRORS as error:
            raise SystemExit(str(error)) from None
        if torch.distributed.is_initialized():
            # Every process waits for the others to finish, then leaves the
            # group: a process that exits with its gloo group alive can
            # abort.
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
