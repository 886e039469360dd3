"""Compile every Triton kernel variant for a GPU architecture on a machine without a GPU.

Triton's CPU interpreter runs the kernels' arithmetic, not Triton's compiler: a
kernel it accepts can still fail to lower, or lower to one that spills registers.
This module replays the launches the real launchers make (on small CPU tensors of
the benchmark's frame size), specialises each argument the way Triton's launcher
does on a GPU (16-byte alignment, integers divisible by 16, integers equal to 1),
and compiles each distinct variant to a cubin with the ptxas that ships inside
Triton. ``cuobjdump`` (also shipped) then reads the registers, local memory
(spills) and shared memory of the result.

It needs the kernels as real JIT functions, so TRITON_INTERPRET must be unset in
the importing process. Command line (in the engine, which adds the commit and writes the file)::

    python -m sava.aot_report --arch 90 --arch 80      # one row per variant, JSON lines

The launcher internals it calls (``create_function_from_signature``,
``JITFunction._pack_args``) are Triton 3.x's; a later Triton that renames them
gets a worded error, not a wrong report.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

HEIGHT = WIDTH = 224  # the benchmark frame; divisibility by 16 of sizes and strides follows from it
CHANNELS, BATCH, FRAMES, SELECTED = 3, 2, 4, 2


@dataclass
class Launch:
    kernel: object  # a triton JITFunction
    variant: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


class _Recorder:
    """Stands in for ``kernel`` in its module: ``kernel[grid](...)`` records instead of launching."""

    def __init__(self, kernel, sink: list[Launch], label: list[str]):
        self.kernel, self.sink, self.label = kernel, sink, label

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.sink.append(Launch(self.kernel, self.label[0], args, kwargs))
        return launch


def _kernel_names(module) -> list[str]:
    from triton.runtime.jit import JITFunction
    return [name for name, value in vars(module).items()
            if isinstance(value, JITFunction) and name.endswith("_kernel")]


def _scenarios() -> Iterator[tuple[str, Callable[[], None]]]:
    """(label, call) for every combination of flags the launchers pass as constexprs."""
    from .fused import perturb, ssim, ssim_one_pass, update

    contiguous = torch.rand(BATCH, FRAMES, CHANNELS, HEIGHT, WIDTH)
    # Frames sliced out of a channels-last clip: the innermost stride is C, not 1.
    channels_last = torch.rand(BATCH, FRAMES, HEIGHT, WIDTH, CHANNELS).permute(0, 1, 4, 2, 3)
    idx = torch.tensor([[0, 2]] * BATCH)
    flow = torch.zeros(BATCH, SELECTED, 2, HEIGHT, WIDTH)
    noise = torch.zeros(BATCH, SELECTED, CHANNELS, HEIGHT, WIDTH)
    grad = torch.zeros_like(noise)
    for layout, video in (("contiguous", contiguous), ("channels-last", channels_last)):
        for parts, f, n in (("flow+noise", flow, noise), ("flow", flow, None), ("noise", None, noise)):
            yield (f"perturb forward {parts} {layout}",
                   lambda v=video, f=f, n=n: perturb._launch_forward(v, idx, f, n))
            yield (f"perturb forward {parts} {layout} +rows",  # the budget projection's masked evaluation
                   lambda v=video, f=f, n=n: perturb._launch_forward(v, idx, f, n, torch.ones(BATCH, dtype=bool)))
            for need_video in (False, True):
                yield (f"perturb backward {parts}{' +video' if need_video else ''} {layout}",
                       lambda v=video, f=f, n=n, nv=need_video: perturb._launch_backward(grad, v, idx, f, n, nv))
    frames = contiguous.flatten(0, 1)
    for keep in (False, True):
        yield f"ssim forward {'keep maps' if keep else 'value only'}", lambda k=keep: ssim._launch_forward(
            frames, frames, k)
    yield "ssim forward value only +rows", lambda: ssim._launch_forward(
        frames, frames, False, torch.ones(BATCH, dtype=torch.bool))
    ho, wo = HEIGHT - ssim.SSIM_WINDOW + 1, WIDTH - ssim.SSIM_WINDOW + 1
    maps = torch.zeros(frames.shape[0], CHANNELS, 3, ho, wo)
    yield "ssim backward", lambda: ssim._launch_backward(torch.ones(frames.shape[0]), frames, frames, maps)
    yield "ssim one pass", lambda: ssim_one_pass.launch(frames, frames)
    rows = torch.zeros(BATCH * SELECTED, CHANNELS * HEIGHT * WIDTH)
    active = torch.ones(rows.shape[0], dtype=torch.bool)
    yield "adam", lambda: update.masked_adam_step_(rows.clone(), rows, rows.clone(), rows.clone(),
                                                   torch.zeros(rows.shape[0], dtype=torch.int64), active, 0.01)
    pair = [torch.zeros(BATCH, SELECTED, 2, HEIGHT, WIDTH), torch.zeros(BATCH, SELECTED, CHANNELS, HEIGHT, WIDTH)]
    yield "adam flow+noise", lambda: update.masked_adam_multi_(
        [p.clone() for p in pair], pair, [p.clone() for p in pair], [p.clone() for p in pair],
        torch.zeros(BATCH, dtype=torch.int64), torch.ones(BATCH, dtype=torch.bool), [0.1, 0.01])
    for eps, clean in ((None, None), (0.03, None), (0.03, rows)):
        label = "sign" + (" +epsilon" if eps else "") + (" +clean" if clean is not None else "")
        yield label, lambda e=eps, c=clean: update.masked_sign_step_(rows.clone(), rows, active, 0.01, e, c)


def record_launches() -> list[Launch]:
    """The kernel launches the launchers make for every scenario, recorded without running a kernel."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("sava.kernels.aot needs TRITON_INTERPRET unset: under the interpreter the kernels "
                           "are not compiled. Run `python -m sava.aot_report` in a fresh process.")
    from .fused import perturb, ssim, ssim_one_pass, update

    sink: list[Launch] = []
    label = [""]
    patched = [(module, name, getattr(module, name)) for module in (perturb, ssim, ssim_one_pass, update)
               for name in _kernel_names(module)]
    for module, name, kernel in patched:
        setattr(module, name, _Recorder(kernel, sink, label))
    try:
        for label[0], call in _scenarios():
            call()
    finally:
        for module, name, kernel in patched:
            setattr(module, name, kernel)
    return sink


def compile_launch(launch: Launch, arch: int):
    """Specialise the recorded arguments as Triton's launcher would and compile them for sm_``arch``."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile, make_backend
    try:
        from triton.runtime.jit import create_function_from_signature
        target = GPUTarget("cuda", arch, 32)
        backend = make_backend(target)
        kernel = launch.kernel
        binder = create_function_from_signature(kernel.signature, kernel.params, backend)
        bound, specialization, options = binder(*launch.args, **launch.kwargs)
        options, signature, constexprs, attrs = kernel._pack_args(backend, launch.kwargs, bound, specialization,
                                                                  options)
    except (ImportError, AttributeError, TypeError) as error:
        import triton
        raise RuntimeError(f"sava.kernels.aot follows Triton 3.x's launcher internals; triton {triton.__version__} "
                           f"differs ({error})") from error
    return compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__)


_RESOURCE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def resource_usage(compiled) -> dict[str, int]:
    """Registers per thread, stack, static shared memory and local memory (spills) of a compiled kernel."""
    from triton import knobs
    cuobjdump = os.path.join(os.path.dirname(knobs.nvidia.ptxas.path), "cuobjdump")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.cubin")
        with open(path, "wb") as handle:
            handle.write(compiled.asm["cubin"])
        report = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True,
                                check=True).stdout
    found = _RESOURCE.search(report)
    if found is None:
        raise RuntimeError(f"cuobjdump printed no resource line for {compiled.name}:\n{report}")
    registers, stack, shared, local = map(int, found.groups())
    return {"registers": registers, "stack_bytes": stack, "static_shared_bytes": shared, "local_bytes": local}


def loop_carried_values(compiled) -> int:
    """The most values any loop of the kernel carries from one iteration to the next (Triton IR). A kernel
    that keeps running sums in registers across a loop must carry them all; one that the front end
    miscompiled (a reassignment it took for no change) carries fewer, and the interpreter would not show it."""
    loops = [line.split("iter_args(", 1)[1] for line in compiled.asm["ttgir"].splitlines()
             if "scf.for" in line and "iter_args(" in line]
    return max((loop.split(")", 1)[0].count("=") for loop in loops), default=0)


def report(archs: list[int], commit: str | None = None) -> Iterator[dict]:
    """One row per (architecture, kernel variant); ``commit`` is the caller's (``sava.aot_report``)."""
    import triton

    launches = record_launches()
    for arch in archs:
        for launch in launches:
            compiled = compile_launch(launch, arch)
            meta = compiled.metadata
            warps = meta.num_warps
            usage = resource_usage(compiled)
            # Resident warps per SM if registers were the only limit (64 K registers, 64 warps on sm_80/sm_90).
            blocks = 65536 // max(1, usage["registers"] * 32 * warps)
            yield {"arch": f"sm_{arch}", "kernel": meta.name, "variant": launch.variant, "num_warps": warps,
                   "dynamic_shared_bytes": meta.shared, **usage, "loop_carried_values": loop_carried_values(compiled),
                   "register_limited_occupancy": round(min(64, blocks * warps) / 64, 3),
                   "commit": commit, "triton": triton.__version__}

