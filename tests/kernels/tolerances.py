"""One dtype -> tolerance table for every kernel test, and a verbose mismatch report."""

from __future__ import annotations

import torch

TOLERANCES = {
    torch.float64: dict(rtol=1e-9, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, dtype=None) -> None:
    """Compare with the dtype's tolerances; on failure say how many values are off,
    where the first ones are, and whether NaN or Inf appeared."""
    tol = TOLERANCES[dtype or expected.dtype]
    actual = actual.detach()
    expected = expected.detach().to(actual.dtype)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    bad = ~torch.isclose(actual, expected, **tol)
    if bad.any():
        where = bad.nonzero()[:5].tolist()
        diff = (actual - expected).abs()
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.numel()} values differ beyond {tol}; "
            f"max abs diff {float(diff[torch.isfinite(diff)].max()):.3e}; first at {where}; "
            f"actual NaN/Inf: {int((~torch.isfinite(actual)).sum())}, expected NaN/Inf: "
            f"{int((~torch.isfinite(expected)).sum())}"
        )
