"""colossal_sched: ColossalAI's learning-rate schedulers as exact, closed-form functions of the step."""
from .base import ClosedFormLR
from .errors import (CheckpointError, LayoutMismatchError, LRDivergenceError, MissingInitialLRError, ReplanError,
                     ResumeChoiceError, ScheduleMismatchError)
from .resume_choice import ResumeChoice
from .builder import COLOSSALAI_SCHEDULERS, SCHEDULERS, build_lr_scheduler, scheduler_class
from .composed import ComposedLR
from .constant import ConstantWarmupLR
from .cosine import CosineAnnealingLR, CosineAnnealingWarmupLR, FlatAnnealingLR, FlatAnnealingWarmupLR
from .decay import ExponentialLR, StepLR
from .lambdas import LambdaLR, MultiplicativeLR
from .linear import LinearWarmupLR
from .multistep import MultiStepLR, MultiStepWarmupLR
from .onecycle import OneCycleLR
from .plan import PhasedLR, join
from .poly import PolynomialLR, PolynomialWarmupLR
from .range_test import RangeTestResult, lr_range_test, plot_range_test
from .restarts import CosineAnnealingWarmRestartsLR
from .inverse_sqrt import InverseSqrtLR
from .reduce_on_plateau import ReduceLROnPlateauLR
from .wsd import WarmupStableDecayLR

__version__ = "0.1.0"

__all__ = [
    "ClosedFormLR", "ScheduleMismatchError", "MissingInitialLRError", "CheckpointError", "LayoutMismatchError",
    "LRDivergenceError", "SCHEDULERS", "build_lr_scheduler",
    "scheduler_class", "CosineAnnealingLR", "CosineAnnealingWarmupLR", "FlatAnnealingLR", "FlatAnnealingWarmupLR",
    "LinearWarmupLR", "MultiStepLR", "MultiStepWarmupLR", "OneCycleLR", "PolynomialLR", "PolynomialWarmupLR",
    "LambdaLR", "MultiplicativeLR", "StepLR", "ExponentialLR", "COLOSSALAI_SCHEDULERS", "PhasedLR", "join",
    "WarmupStableDecayLR", "InverseSqrtLR", "CosineAnnealingWarmRestartsLR", "ConstantWarmupLR", "ComposedLR",
    "ReplanError", "ResumeChoice", "ResumeChoiceError", "ReduceLROnPlateauLR", "lr_range_test", "RangeTestResult",
    "plot_range_test",
]  # fmt: skip
