"""CUDA's limits on a launch grid, checked on the host before a launch.

A grid axis over its limit fails on the GPU with an opaque launch error, and
Triton's CPU interpreter does not check it at all, so a size that passes
every CPU test can still fail on the device: each launcher builds its grid
through :func:`launch_grid`, and the tests hold the launchers' grids for
large clips to these limits without a GPU.
"""

from __future__ import annotations

# Blocks per grid axis (x, y, z) on every CUDA device since compute capability 3.0.
GRID_LIMITS = (2**31 - 1, 65_535, 65_535)


def launch_grid(kernel: str, *dims: int) -> tuple[int, ...]:
    """``dims`` as a grid, or a ValueError naming the kernel, the axis and the limit it passes."""
    for axis, (size, limit) in enumerate(zip(dims, GRID_LIMITS)):
        if size > limit:
            raise ValueError(f"{kernel}: grid axis {'xyz'[axis]} would have {size:,} blocks, over CUDA's limit of "
                             f"{limit:,} (the input is too large for this kernel's launch: split it)")
    return tuple(dims)
