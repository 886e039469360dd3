"""sava.kernels: the operations of the attack loop.

``reference`` holds the pure-torch definition of each operation; the engine
calls the names exported here, so a faster backend can replace them without
touching any attack.
"""

from .reference import (
    apply_perturbation,
    gather_frames,
    gaussian_window,
    l21_norm,
    masked_adam_step_,
    perturb_frames,
    scatter_frames,
    ssim,
    warp,
)

__all__ = [
    "apply_perturbation",
    "gather_frames",
    "gaussian_window",
    "l21_norm",
    "masked_adam_step_",
    "perturb_frames",
    "scatter_frames",
    "ssim",
    "warp",
]
