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
    """The attack ``method`` on ``model``, with ``settings`` for its constructor.

    Args:
        method: a key of ``METHODS``: ``deepsava``, ``sparse``, ``flicker``, ``keyframe``, ``msanet``, ``fgsm``,
            ``bim``, ``mi``, ``di``, ``ti`` (the last five take ``translation=`` for their TT variant).
        model: a ``VideoModel`` (or anything with the ``AttackedModel`` members), or a bare ``nn.Module``
            taking ``B x T x C x H x W`` in [0, 1] to logits.
        settings: the method's keyword arguments (``frames``, ``max_iters``, ``min_ssim``, ...); the ones left
            out keep the method's defaults.

    Returns:
        An ``Attack``; ``attack.run(videos, labels)`` returns an ``AttackRun`` (per-video results, summary).

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 16 * 16, 3))
        >>> videos = torch.rand(2, 4, 3, 16, 16)
        >>> labels = net(videos).argmax(1)  # attack the model's own decisions
        >>> run = make_attack("deepsava", net, frames=1, max_iters=20).run(videos, labels)
        >>> run.summary.attacked, all(len(r.frames) == 1 for r in run.results)
        (2, True)
    """
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
