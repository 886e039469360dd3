"""sava.kernels: the operations of the attack loop.

``reference`` holds the pure-torch definition of each operation. The names
exported here go through ``dispatch``: the Triton kernel for float32 CUDA
tensors, the reference otherwise (``SAVA_BACKEND`` or ``backend=`` override).
Every attack calls these names, so it gets the kernels without code of its own.
"""

from .dispatch import (
    BACKENDS,
    apply_perturbation,
    masked_adam_multi_,
    masked_adam_step_,
    masked_sign_step_,
    perturb_frames,
    perturb_selected,
    resolve,
    ssim,
)
from .reference import gather_frames, gaussian_window, l21_norm, scatter_frames, warp

__all__ = [
    "BACKENDS",
    "apply_perturbation",
    "gather_frames",
    "gaussian_window",
    "l21_norm",
    "masked_adam_multi_",
    "masked_adam_step_",
    "masked_sign_step_",
    "perturb_frames",
    "perturb_selected",
    "resolve",
    "scatter_frames",
    "ssim",
    "warp",
]
