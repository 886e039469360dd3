"""Attacks. Each is a small object that validates its settings at construction
and runs on the shared batched loop of :mod:`sava.attacks.loop`."""

from .base import AttackRun, SparseAttack
from .deepsava import DeepSAVA
from .loop import Budget, Job, SparseAttackLoop
from .sparse import Sparse

METHODS = {"deepsava": DeepSAVA, "sparse": Sparse}

__all__ = ["METHODS", "AttackRun", "Budget", "DeepSAVA", "Job", "Sparse", "SparseAttack", "SparseAttackLoop"]
