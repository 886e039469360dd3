"""SSIM forward, backward and forward+backward on the k selected frames.

    python benchmarks/bench_ssim.py --out benchmarks/results/ssim.jsonl   # GPU, B=8 T=16 3x224x224, k in 1,4,16
    TRITON_INTERPRET=1 python benchmarks/bench_ssim.py --tiny           # CPU, proves it runs
"""

from __future__ import annotations

import functools
import importlib

import torch
from harness import Case, arguments, autograd_passes, configured, triton_usable, write_and_print

from sava.kernels import dispatch
from sava.kernels import reference as ref


def fussim_function():
    """fussim's ``fused_ssim`` (the package installs as ``fussim``; older builds as ``fused_ssim``), or None.
    Any failure to import it (missing, or an extension built for another torch) leaves the anchor out."""
    for module in ("fussim", "fused_ssim"):
        try:
            return importlib.import_module(module).fused_ssim
        except Exception:  # noqa: BLE001, S112 -- an ImportError, or an extension that fails to load
            continue
    return None


def fused_passes(x, y, name: str, module, constants: dict) -> dict:
    """The fused SSIM's passes under one design (``ssim.DESIGN``) and its module's launch constants."""
    from sava.kernels.fused import ssim as fused

    run = lambda a, r: dispatch.ssim(a, r, backend="triton")  # noqa: E731
    return configured(configured(autograd_passes(run, (x, y), (0,)), module, constants), fused, {"DESIGN": name})


def launch_defaults(module) -> dict:
    return {"SEG": module.SEG, "COLS": module.COLS, "NUM_WARPS": module.NUM_WARPS}


def cases(args) -> list[Case]:
    fused_ssim = fussim_function()
    shapes = [(1, 2, 3, 16, 16, 1)] if args.tiny else [(8, 16, 3, 224, 224, k) for k in (1, 4, 16)]
    out = []
    for b, t, c, h, w, k in shapes:
        x = torch.rand(b, k, c, h, w, device=args.device)
        y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
        values = x.numel()
        # Floors: forward reads x and y; a fused forward+backward also writes dx (performance.md).
        case = Case("ssim", {"B": b, "T": t, "C": c, "H": h, "W": w, "k": k, "dtype": "float32"},
                    {"forward": 8 * values, "backward": 12 * values, "forward+backward": 12 * values})
        if triton_usable(args.device):
            from sava.kernels.fused import ssim as fused
            from sava.kernels.fused import ssim_one_pass

            design = functools.partial(fused_passes, x, y)
            modules = {"maps": fused, "one_pass": ssim_one_pass}
            # "triton" is the default design, the other one is timed beside it under its name.
            case.impls["triton"] = design(fused.DESIGN, modules[fused.DESIGN], launch_defaults(modules[fused.DESIGN]))
            for name in fused.DESIGNS:
                if name != fused.DESIGN:
                    case.impls[f"triton_{name}"] = design(name, modules[name], launch_defaults(modules[name]))
            if args.sweep and k == shapes[-1][-1]:
                # One or two columns per thread, 2 or 4 warps: 8 warps lost to 4 at every size of the last sweep
                # (H200, 2026-11-26), and each configuration costs a compile on a fresh machine.
                columns = ((64, 2), (128, 2), (128, 4), (256, 4))
                grid = [(16, 32, 1)] if args.tiny else [(s, c, w) for s in (16, 32, 64) for c, w in columns]
                for seg, cols, warps in grid:
                    constants = {"SEG": seg, "COLS": cols, "NUM_WARPS": warps}
                    case.impls[f"triton_{seg}x{cols}w{warps}"] = design("maps", fused, constants)
                    # The one-pass kernel carries 81 open sums per column (155 registers at one column per
                    # thread on sm_90): more columns per thread would spill.
                    if args.tiny or cols == 32 * warps:
                        case.impls[f"triton_one_pass_{seg}x{cols}w{warps}"] = design("one_pass", ssim_one_pass,
                                                                                      constants)
        case.impls["reference"] = autograd_passes(ref.ssim, (x, y), (0,))
        if args.compile:
            case.impls["reference_compiled"] = autograd_passes(torch.compile(ref.ssim), (x, y), (0,))
        try:
            from pytorch_msssim import ssim as msssim

            per_frame = lambda a, r: msssim(a.flatten(0, 1), r.flatten(0, 1), data_range=1.0, size_average=False)
            case.impls["pytorch_msssim"] = autograd_passes(per_frame, (x, y), (0,))
        except ImportError:
            pass
        if fused_ssim is not None:  # its mean SSIM over all frames, "valid" windows as ours
            fussim = lambda a, r: fused_ssim(a.flatten(0, 1), r.flatten(0, 1), padding="valid")
            case.impls["fussim"] = autograd_passes(fussim, (x, y), (0,))
        out.append(case)
    return out


if __name__ == "__main__":
    arguments_ = arguments(__doc__)
    write_and_print(cases(arguments_), arguments_)
