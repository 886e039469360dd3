"""The C library's apply and SSIM (forward, as a C++ service runs them) against
sava's Python paths, in one run: on the CPU the ctypes library against the
torch reference; on a GPU the library's CUDA build (through CuPy, the same
kernels) against the Triton kernels.

    python benchmarks/bench_native.py --out benchmarks/results/native.jsonl
    python benchmarks/bench_native.py --tiny                               # CI: proves it runs
"""

from __future__ import annotations

from functools import partial

import torch
from harness import Case, arguments, triton_usable, write_and_print

from sava import native
from sava.kernels import dispatch
from sava.kernels import reference as ref


def cases(args) -> list[Case]:
    shapes = [(4, 3, 16, 16, 1)] if args.tiny else [(16, 3, 224, 224, k) for k in (1, 4, 16)]
    out = []
    for t, c, h, w, k in shapes:
        video = torch.rand(t, c, h, w, device=args.device)
        frames = torch.arange(k, device=args.device)
        flow = torch.randn(k, 2, h, w, device=args.device)
        noise = 0.03 * torch.randn(k, c, h, w, device=args.device)
        values = k * c * h * w
        shape = {"B": 1, "T": t, "C": c, "H": h, "W": w, "k": k, "dtype": "float32"}
        # Floors: apply reads the k frames, flow and noise and writes k frames; SSIM reads two sets of k frames.
        apply = Case("apply", dict(shape), {"forward": 4 * (3 * values + 2 * k * h * w)})
        ssim = Case("ssim_forward", dict(shape), {"forward": 8 * values})
        clean, adv = video[:k], (video[:k] + noise).clamp(0, 1)
        apply.impls["reference"] = {"forward": partial(ref.apply_perturbation, video[None], frames[None], flow[None],
                                                       noise[None])}
        ssim.impls["reference"] = {"forward": partial(ref.ssim, adv, clean)}
        if args.device == "cpu":
            apply.impls["native_cpu"] = {"forward": partial(native.apply_perturbation, video, frames, flow, noise)}
            ssim.impls["native_cpu"] = {"forward": partial(native.ssim, adv, clean)}
        else:
            apply.impls["native_cuda"] = {"forward": partial(native.cuda_apply, video, frames.cpu(), flow, noise)}
            ssim.impls["native_cuda"] = {"forward": partial(native.cuda_ssim, adv, clean)}
        if triton_usable(args.device):
            apply.impls["triton"] = {"forward": partial(dispatch.apply_perturbation, video[None], frames[None],
                                                        flow[None], noise[None], backend="triton")}
            ssim.impls["triton"] = {"forward": partial(dispatch.ssim, adv, clean, backend="triton")}
        out += [apply, ssim]
    return out


if __name__ == "__main__":
    arguments_ = arguments(__doc__)
    with torch.no_grad():
        write_and_print(cases(arguments_), arguments_)
