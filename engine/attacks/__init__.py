"""Attacks. Each is a small object that validates its settings at construction
and runs on the shared batched loop of :mod:`sava.attacks.loop`."""

from .deepsava import AttackRun, DeepSAVA
from .loop import Budget, Job, SparseAttackLoop

__all__ = ["AttackRun", "Budget", "DeepSAVA", "Job", "SparseAttackLoop"]
