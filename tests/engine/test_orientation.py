"""Footage shown as its display matrix asks (``sava.data.orientation``): phones' quarter turns and front
cameras' mirrors, written with PyAV's own display-matrix setter and held to the upright picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sava.data.video_io import frame_size, load_clip
from tests.engine.test_sampling import lossless


def rotated_file(path: Path, stored: np.ndarray, angle: int, hflip: bool = False) -> None:
    """Five copies of ``stored`` (H x W x 3), losslessly, with ``angle`` and ``hflip`` in the display matrix."""
    lossless(path, np.stack([stored] * 5), angle, hflip)


@pytest.mark.parametrize("angle", [90, -90, 180])
def test_footage_with_a_display_rotation_is_decoded_upright(tmp_path, angle):
    """A phone's portrait clip is landscape frames plus a display matrix; sava decoded it lying on its side."""
    upright = np.zeros((48, 32, 3), np.uint8)  # portrait, with a marker that tells every turn apart
    upright[:12, :8] = [255, 0, 0]
    upright[40:, 24:] = [0, 0, 255]
    rotated_file(tmp_path / "plain.mkv", upright, 0)
    # Stored turned the other way, so that the display matrix's counterclockwise turn undoes it.
    rotated_file(tmp_path / "phone.mkv", np.ascontiguousarray(np.rot90(upright, -angle // 90)), angle)
    assert frame_size(tmp_path / "phone.mkv") == (48, 32)
    expected = load_clip(tmp_path / "plain.mkv", 4, (48, 32))
    assert torch.equal(load_clip(tmp_path / "phone.mkv", 4, (48, 32)), expected)
    # Scaled to a size other than the stored one: the scale applies to the upright picture. FFmpeg's scaler
    # filters rows and columns a little differently (edges differ by up to 28 levels), so compare 4 x 4 means.
    scaled, reference = (load_clip(tmp_path / name, 4, (24, 16)) for name in ("phone.mkv", "plain.mkv"))
    assert scaled.shape == (4, 3, 24, 16)
    assert torch.allclose(F.avg_pool2d(scaled, 4), F.avg_pool2d(reference, 4), atol=0.03)



@pytest.mark.parametrize("angle", [0, 90, 180, 270])
@pytest.mark.parametrize("mirrored", [False, True])
def test_every_exif_orientation_is_shown_upright(tmp_path, angle, mirrored):
    """The eight orientations: a counterclockwise turn of ``angle``, then a left-right mirror when
    ``mirrored`` (PyAV's documented meaning of set_display_rotation). A mirrored file at angle 0 reads back as
    a 180-degree rotation, and sava turned it upside down instead of mirroring it."""
    upright = np.zeros((48, 32, 3), np.uint8)
    upright[:12, :8] = [255, 0, 0]  # a red top-left corner and a blue bottom-right one: no symmetry hides
    upright[40:, 24:] = [0, 0, 255]
    upright[:4, 24:] = [0, 255, 0]  # and a green top-right one, which tells a mirror from a turn
    rotated_file(tmp_path / "plain.mkv", upright, 0)
    # What the camera stored: the upright picture with the display steps undone (mirror, then turn back).
    stored = np.ascontiguousarray(np.rot90(upright[:, ::-1] if mirrored else upright, -angle // 90))
    rotated_file(tmp_path / "phone.mkv", stored, angle, hflip=mirrored)
    assert frame_size(tmp_path / "phone.mkv") == (48, 32)
    assert torch.equal(load_clip(tmp_path / "phone.mkv", 4, (48, 32)), load_clip(tmp_path / "plain.mkv", 4, (48, 32)))
