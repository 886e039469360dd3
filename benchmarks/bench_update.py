"""Masked Adam step on the per-frame state of the selected frames (flow and noise).

    python benchmarks/bench_update.py --out benchmarks/results/update.jsonl   # GPU
    TRITON_INTERPRET=1 python benchmarks/bench_update.py --tiny             # CPU, proves it runs
"""

from __future__ import annotations

from functools import partial

import torch
from harness import Case, arguments, triton_usable, write_and_print

from sava.kernels import dispatch
from sava.kernels import reference as ref


def cases(args) -> list[Case]:
    shapes = [(2, 3, 3, 16, 16, 1)] if args.tiny else [(8, 16, 3, 224, 224, k) for k in (1, 4, 16)]
    out = []
    for b, t, c, h, w, k in shapes:
        state = [torch.randn(b, k, c + 2, h, w, device=args.device) for _ in range(4)]  # param, grad, m, v
        state[3] = state[3].abs()
        step = torch.zeros(b, dtype=torch.int64, device=args.device)
        active = torch.arange(b, device=args.device) % 4 != 0  # a quarter of the videos already finished
        live = int(active.sum()) * k * (c + 2) * h * w
        # Adam reads param, grad and both moments, writes param and moments: 28 bytes per live value.
        case = Case("update", {"B": b, "T": t, "C": c, "H": h, "W": w, "k": k, "dtype": "float32"},
                    {"step": 28 * live})
        inputs = (*state, step, active, 1e-3)
        if triton_usable(args.device):
            case.impls["triton"] = {"step": partial(dispatch.masked_adam_step_, *inputs, backend="triton")}
        case.impls["reference"] = {"step": partial(ref.masked_adam_step_, *inputs)}
        if args.compile:
            case.impls["reference_compiled"] = {"step": partial(torch.compile(ref.masked_adam_step_), *inputs)}
        out.append(case)
    return out


if __name__ == "__main__":
    arguments_ = arguments(__doc__)
    write_and_print(cases(arguments_), arguments_)
