#!/usr/bin/env python3
"""Train an ESC-50 teacher, or distil a student from teachers.

    python train.py hparams/teacher.yaml --data_folder=ESC-50-master --seed=1
    python train.py hparams/student.yaml --data_folder=ESC-50-master \
        --teacher_folders=[results/ESC50/teacher/fold1/1,...]

The second task of speechbrain-kd: environmental sound classification on
ESC-50 (Piczak, ACM Multimedia 2015), 5 folds. The phase itself (data
pipeline, model families, the Brain, the KD loss, the teacher ensemble and
its soft-label cache, complexity limits, training and evaluation on the
test fold) is the library's :mod:`speechbrain_kd.phase`; this script only
says how to prepare the split and where its labels are. A YAML with
``teacher_folders`` is a student. A folder holding a run of other settings
is refused unless ``--overwrite=True``.
"""

import sys

from esc50_prepare import prepare_esc50, training_categories

from speechbrain_kd.phase import PhaseTask, phase_main


def prepare(settings):
    """Write the manifests of the settings' cross-validation split."""
    prepare_esc50(
        settings["data_folder"],
        settings["prepare_folder"],
        test_fold=settings["test_fold"],
        valid_fold=settings["valid_fold"],
        esc10=settings["esc10"],
    )


def phase_name(settings):
    """A YAML with teachers trains a student; another, a teacher."""
    return "student" if "teacher_folders" in settings else "teacher"


TASK = PhaseTask(
    label_column="label",
    prepare=prepare,
    training_labels=training_categories,
    phase_name=phase_name,
)

if __name__ == "__main__":
    phase_main(sys.argv[1:], TASK)
