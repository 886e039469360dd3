"""Sparse perturbation (gather + warp + noise + clamp) forward, backward and both.

    python benchmarks/bench_perturb.py --out benchmarks/results/perturb.jsonl   # GPU
    TRITON_INTERPRET=1 python benchmarks/bench_perturb.py --tiny              # CPU, proves it runs
"""

from __future__ import annotations

import itertools

import torch
from harness import Case, arguments, autograd_passes, configured, triton_usable, write_and_print

from sava.kernels import dispatch
from sava.kernels import reference as ref


def reference_selected(video, frame_idx, flow, noise):
    return ref.perturb_frames(ref.gather_frames(video, frame_idx), flow, noise)


def cases(args) -> list[Case]:
    # The last full-size row: T = 64 at k = 1, whose cost must be the T = 16 row's (it grows with k, not T).
    shapes = [(1, 3, 3, 16, 16, k) for k in (1, 3)] if args.tiny else \
        [(8, 16, 3, 224, 224, k) for k in (1, 4, 16)] + [(8, 64, 3, 224, 224, 1)]
    out = []
    for b, t, c, h, w, k in shapes:
        video = torch.rand(b, t, c, h, w, device=args.device)
        frame_idx = torch.stack([torch.randperm(t, device=args.device)[:k] for _ in range(b)])
        flow = torch.randn(b, k, 2, h, w, device=args.device)
        noise = 0.05 * torch.randn(b, k, c, h, w, device=args.device)
        locations = b * k * h * w
        # Bytes per selected pixel location: forward reads flow (8), the frame (4C), the noise (4C) and
        # writes 4C; backward reads grad, flow, frame, noise and writes d flow, d noise (performance.md).
        floor = {"forward": (8 + 12 * c) * locations, "backward": (16 + 16 * c) * locations,
                 "forward+backward": (24 + 28 * c) * locations}
        case = Case("perturb", {"B": b, "T": t, "C": c, "H": h, "W": w, "k": k, "dtype": "float32"}, floor)
        inputs = (video, frame_idx, flow, noise)
        if triton_usable(args.device):
            from sava.kernels.fused import perturb as module

            run = lambda *a: dispatch.perturb_selected(*a, backend="triton")  # noqa: E731
            defaults = {"BLOCK": module.BLOCK, "NUM_WARPS": module.NUM_WARPS}
            case.impls["triton"] = configured(autograd_passes(run, inputs, (2, 3)), module, defaults)
            if args.sweep and k == (3 if args.tiny else 16):
                grid = [(256, 4)] if args.tiny else itertools.product((256, 512, 1024, 2048), (4, 8, 16))
                for block, warps in grid:
                    case.impls[f"triton_b{block}w{warps}"] = configured(
                        autograd_passes(run, inputs, (2, 3)), module, {"BLOCK": block, "NUM_WARPS": warps})
        case.impls["reference"] = autograd_passes(reference_selected, inputs, (2, 3))
        if args.compile:
            case.impls["reference_compiled"] = autograd_passes(torch.compile(reference_selected), inputs, (2, 3))
        out.append(case)
    return out


if __name__ == "__main__":
    arguments_ = arguments(__doc__)
    write_and_print(cases(arguments_), arguments_)
