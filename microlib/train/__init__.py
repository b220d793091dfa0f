"""SliceGAN training (Kench & Cooper 2021), split by responsibility:

* :mod:`microlib.train.data` -- image-type inference and the canonical training arrays;
* :mod:`microlib.train.trainer` -- the WGAN-GP trainer (:class:`SliceGANTrainer`);
* :mod:`microlib.train.optim` -- speed switches, learning-rate schedule, weight EMA;
* :mod:`microlib.train.monitor` -- quality checks while training and the stop rule;
* :mod:`microlib.train.loop` -- the restartable loop around any trainer (:class:`RunLoop`):
  resume, progress, checkpoints, signals and the order of the final files;
* :mod:`microlib.train.run` -- one single-image run (:func:`train_run`): inputs, quality
  checks and the model files;
* :mod:`microlib.train.family` / :mod:`microlib.train.family_run` -- one AdaIN-conditioned
  generator for a family of images (:class:`FamilyTrainer`, :func:`family_train_run`).
"""

from __future__ import annotations

from microlib.slicegan.networks import cuda_backend_flags
from microlib.slicegan.presets import LR_SCHEDULES
from microlib.train.data import (
    MAX_PHASES,
    TrainingSet,
    infer_image_type,
    make_training_set,
    prepare_training_array,
)
from microlib.train.family import FamilyTrainer
from microlib.train.family_run import FamilyConfig, family_train_run, parse_codes
from microlib.train.optim import GeneratorEMA, Optimisations, lr_factor
from microlib.train.outputs import LOG_COLUMNS, read_training_input
from microlib.train.run import TrainConfig, train_run
from microlib.train.trainer import TRAIN_STATE_FORMAT, SliceGANTrainer, slices_along

__all__ = [
    "LOG_COLUMNS",
    "LR_SCHEDULES",
    "MAX_PHASES",
    "TRAIN_STATE_FORMAT",
    "FamilyConfig",
    "FamilyTrainer",
    "GeneratorEMA",
    "Optimisations",
    "SliceGANTrainer",
    "TrainConfig",
    "TrainingSet",
    "cuda_backend_flags",
    "family_train_run",
    "infer_image_type",
    "lr_factor",
    "make_training_set",
    "parse_codes",
    "prepare_training_array",
    "read_training_input",
    "slices_along",
    "train_run",
]
