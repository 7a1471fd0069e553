"""Training Myrtle5 on CIFAR-10: the options (`config`), a run's life cycle (`run`), the
device-side trainer (`trainer`) and its optimizer (`optim`), the execution probe (`probe`), the
augmentations (`augment`) and the trainer's pure pieces (`parts`).

The face is lazy: a name loads its module on first use, so the declarations (`config`) load
without torch and `hw0 --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hw0cli.lazy import face

if TYPE_CHECKING:
    from hw0cli.train.config import LATER_FIELDS as LATER_FIELDS
    from hw0cli.train.config import SCIENCE_FIELDS as SCIENCE_FIELDS
    from hw0cli.train.config import WIDTH_SCALED as WIDTH_SCALED
    from hw0cli.train.config import TrainConfig as TrainConfig
    from hw0cli.train.config import config_json as config_json
    from hw0cli.train.config import make_config as make_config
    from hw0cli.train.config import recipe_settings as recipe_settings
    from hw0cli.train.config import run_id_for as run_id_for
    from hw0cli.train.config import science_of as science_of
    from hw0cli.train.config import validate as validate
    from hw0cli.train.probe import Execution as Execution
    from hw0cli.train.probe import choose_execution as choose_execution
    from hw0cli.train.probe import make_timer as make_timer
    from hw0cli.train.probe import width_class as width_class
    from hw0cli.train.run import TrainReporter as TrainReporter
    from hw0cli.train.run import TrainResult as TrainResult
    from hw0cli.train.run import run_train as run_train
    from hw0cli.train.trainer import Trainer as Trainer

_EXPORTS = {
    "LATER_FIELDS": "config",
    "SCIENCE_FIELDS": "config",
    "WIDTH_SCALED": "config",
    "TrainConfig": "config",
    "config_json": "config",
    "make_config": "config",
    "recipe_settings": "config",
    "run_id_for": "config",
    "science_of": "config",
    "validate": "config",
    "Execution": "probe",
    "choose_execution": "probe",
    "make_timer": "probe",
    "width_class": "probe",
    "Trainer": "trainer",
    "TrainReporter": "run",
    "TrainResult": "run",
    "run_train": "run",
}
__all__ = sorted(_EXPORTS)

__getattr__ = face(__name__, _EXPORTS)
