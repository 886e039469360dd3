"""Attacks. Each is a small object that validates its settings at construction
and runs on a shared loop: the sparse attacks on
:mod:`sava.attacks.loop`, the L-infinity transfer family on
:mod:`sava.attacks.linf`.

``make_attack(method, model, **settings)`` builds any of them by name.
"""

from ..errors import ConfigError
from .attention import AttentionGuided
from .base import Attack, AttackRun, SparseAttack
from .budget import Budget
from .deepsava import DeepSAVA
from .flicker import SparseFlickering
from .keyframe import GradientKeyframe
from .linf import PRESETS as LINF_PRESETS
from .linf import LinfAttack
from .loop import SparseAttackLoop
from .slots import Job
from .sparse import Sparse
from .step import Step
from .translation import TemporalTranslation

METHODS = {"deepsava": DeepSAVA, "sparse": Sparse, "flicker": SparseFlickering, "keyframe": GradientKeyframe,
           "msanet": AttentionGuided} | {name: LinfAttack for name in LINF_PRESETS}
SPARSE_METHODS = ("deepsava", "sparse", "flicker", "keyframe")
LINF_METHODS = tuple(LINF_PRESETS)


def make_attack(method: str, model, **settings) -> Attack:
    """The attack ``method`` (a key of ``METHODS``) on ``model``; FGSM, BIM, MI,
    DI and TI take ``translation=True`` for their TT variant."""
    if method not in METHODS:
        raise ConfigError(f"unknown attack method {method!r}; choose from {', '.join(METHODS)}")
    if method in LINF_PRESETS:
        settings = {"method": method} | settings
    return METHODS[method](model, **settings)


__all__ = [
    "LINF_METHODS", "METHODS", "SPARSE_METHODS", "Attack", "AttackRun", "AttentionGuided", "Budget", "DeepSAVA",
    "GradientKeyframe",
    "Job", "LinfAttack", "Sparse", "SparseAttack", "SparseAttackLoop", "SparseFlickering", "Step",
    "TemporalTranslation", "make_attack",
]
