"""PANORAMIA, one driver for every modality: `run_panoramia(PanoramiaInputs, PanoramiaSettings)`.

A modality writes four pieces (protocols.py): its Examples, a ModelFamily (the target's
architecture, also trained as the helper), a Generator and a LearnedAttack."""

from privaudit.attacks.panoramia.driver import (
    GivenTarget,
    PanoramiaInputs,
    PanoramiaSettings,
    TrainedTarget,
    run_panoramia,
)
from privaudit.attacks.panoramia.protocols import (
    Examples,
    Generator,
    LearnedAttack,
    ModelFamily,
    Target,
    TensorExamples,
)

__all__ = [
    "Examples",
    "Generator",
    "GivenTarget",
    "LearnedAttack",
    "ModelFamily",
    "PanoramiaInputs",
    "PanoramiaSettings",
    "Target",
    "TensorExamples",
    "TrainedTarget",
    "run_panoramia",
]
