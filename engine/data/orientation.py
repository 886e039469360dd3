"""How a decoded frame is shown: the turns and mirrors its display matrix asks for.

Phones store portrait footage as landscape frames, and front cameras store it mirrored, with a display matrix
(ISO/IEC 14496-12's, carried as frame side data) saying how to show it; players apply it, decoders do not.
The matrix is read as FFmpeg's own players read it: the rotation angle, rounded to a quarter turn, chooses a
turn, and the signs of the matrix's entries say whether a mirror goes with it. An angle between quarter turns
(which FFmpeg would rotate by freely) is taken to the nearest quarter.
"""

from __future__ import annotations

import math

import numpy as np

# Each step on an H x W x 3 array, named as FFmpeg's transpose, hflip and vflip filters are.
STEPS = {
    "clock": lambda image: np.rot90(image, -1),  # a quarter turn clockwise
    "cclock": lambda image: np.rot90(image, 1),  # a quarter turn counterclockwise
    "cclock_flip": lambda image: image.transpose(1, 0, 2),  # counterclockwise, then mirrored top to bottom
    "clock_flip": lambda image: image[::-1, ::-1].transpose(1, 0, 2),  # clockwise, then mirrored top to bottom
    "hflip": lambda image: image[:, ::-1],
    "vflip": lambda image: image[::-1],
}
TURNING = {"clock", "cclock", "clock_flip", "cclock_flip"}  # steps that swap height and width


def display_matrix(frame) -> np.ndarray | None:
    """The frame's display matrix (nine 32-bit integers, 16.16 fixed point), or None."""
    # Looked up by name: PyAV 18.1.1 made the container a mapping whose iteration yields types, not the data.
    data = frame.side_data.get("DISPLAYMATRIX")
    return None if data is None else np.frombuffer(bytes(data), dtype=np.int32)


def display_steps(frame) -> tuple[str, ...]:
    """The steps (``STEPS``' names) that show ``frame`` as its display matrix asks; none without one."""
    matrix = display_matrix(frame)
    angle = frame.rotation
    if matrix is None or matrix.size < 9 or not math.isfinite(angle):  # absent, or singular (NaN)
        return ()
    quarter = round(-angle / 90) % 4  # the clockwise quarter turns FFmpeg's players take
    if quarter == 1:
        return ("cclock_flip",) if matrix[3] > 0 else ("clock",)
    if quarter == 2:
        return (("hflip",) if matrix[0] < 0 else ()) + (("vflip",) if matrix[4] < 0 else ())
    if quarter == 3:
        return ("clock_flip",) if matrix[3] < 0 else ("cclock",)
    return ("vflip",) if matrix[4] < 0 else ()


def turns_sideways(steps: tuple[str, ...]) -> bool:
    """Whether the shown picture's height is the stored frame's width."""
    return any(step in TURNING for step in steps)


def apply_steps(image: np.ndarray, steps: tuple[str, ...]) -> np.ndarray:
    for step in steps:
        image = STEPS[step](image)
    return image
