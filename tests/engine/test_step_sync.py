"""The attack step never reads a tensor on the host, and costs few operations besides the model's.

Every ATen operation of a whole DeepSAVA run is seen through a ``TorchDispatchMode``, tagged with the phase
that issued it: a step, or the host's polls and slot loads (where reads are allowed). Independent of the
step's code: the operations that force a host read are named by ATen, not by sava.
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sava.attacks.loop as loop_module
from sava import DeepSAVA
from sava.attacks.loop import SparseAttackLoop
from sava.attacks.slots import Job
from sava.data import bundled
from sava.metrics import VideoResult
from sava.models import load_bundled
from tests.device import DEVICE

torch.set_num_threads(2)
aten = torch.ops.aten
READS_VALUES = {aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default, aten.nonzero.default,
                aten.masked_select.default, aten.equal.default, aten.allclose.default}
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def host_read(func, args) -> str | None:
    """Why this operation needs the tensor's values on the host, or None."""
    if func in READS_VALUES:
        return str(func)
    masks = [i for i in (args[1] if func in INDEXING else []) if isinstance(i, torch.Tensor) and i.dtype == torch.bool]
    if masks:
        return f"{func} with a boolean mask"
    if func in (aten._to_copy.default, aten.copy_.default):
        source = args[1] if func is aten.copy_.default else args[0]
        target = args[0].device if func is aten.copy_.default else None
        if source.device.type != "cpu" and (target is None or target.type == "cpu"):
            return f"{func} from {source.device} to the host"
    return None


class Phases(TorchDispatchMode):
    """Records (phase, operation, why it reads values) for every operation."""

    def __init__(self):
        super().__init__()
        self.phase = "loop"
        self.seen: list[tuple[str, object, str | None]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append((self.phase, func, host_read(func, args)))
        return func(*args, **(kwargs or {}))


def jobs(count: int, frames: int = 1):
    clips = bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, count)), clips.labels[:count]
    return [Job(videos[i % len(videos)], torch.arange(frames), int(labels[i % len(labels)]),
                VideoResult(f"v{i}", int(labels[i % len(labels)]), -1, True)) for i in range(count)]


def traced_run(monkeypatch, batch: int, steps: int, poll_every: int):
    """A DeepSAVA run, every video held to ``steps`` iterations, with each operation tagged by its phase."""
    model = load_bundled("tsn-digits", device=DEVICE)
    attack = DeepSAVA(model, frames=1, selector="first", max_iters=steps, batch_size=batch)
    mode = Phases()
    step_numbers = iter(range(10**6))

    def tagged(phase, fn):
        def run(*args, **kwargs):
            before, mode.phase = mode.phase, phase() if callable(phase) else phase
            try:
                return fn(*args, **kwargs)
            finally:
                mode.phase = before
        return run

    original_step = loop_module.attack_step
    monkeypatch.setattr(loop_module, "attack_step", tagged(lambda: f"step {next(step_numbers)}", original_step))

    class Traced(SparseAttackLoop):
        def _handle(self, *args):  # a generator: tag its body, not only its creation
            mode.phase = "poll"
            for result in super()._handle(*args):
                yield result
                mode.phase = "poll"
            mode.phase = "loop"

        _snapshot = tagged("poll", SparseAttackLoop._snapshot)
        _refill = tagged("poll", SparseAttackLoop._refill)

    loop = Traced(model, attack.perturbation, attack.objective, targeted=False, max_iters=steps, budget=attack.budget,
                  capacity=batch, stop_on_success=False, poll_every=poll_every)
    if os.environ.get("TRITON_INTERPRET") == "1":
        # On the CPU the interpreter runs the Triton kernels with torch operations of its own; on CUDA a kernel
        # launch issues none. Each launch is recorded as one entry and runs outside the mode.
        from torch.utils._python_dispatch import _disable_current_modes
        from triton.runtime import interpreter

        launch = interpreter.GridExecutor.__call__

        def counted_launch(self, *args, **kwargs):
            mode.seen.append((mode.phase, "triton launch", None))
            with _disable_current_modes():
                return launch(self, *args, **kwargs)

        monkeypatch.setattr(interpreter.GridExecutor, "__call__", counted_launch)
    work = jobs(batch)
    with mode:
        results = list(loop.run(work))
    assert len(results) == batch and all(r.iterations == steps for r in results)
    return mode.seen, model


def test_no_host_read_between_two_polls(monkeypatch):
    seen, _ = traced_run(monkeypatch, batch=4, steps=9, poll_every=8)
    steps = {phase for phase, _, _ in seen if phase.startswith("step")}
    assert len(steps) >= 9
    reads = [(phase, why) for phase, _, why in seen if why and phase != "poll"]
    assert reads == [], reads[:10]
    # The polls do read: the check above would see a read if one were issued outside them.
    assert any(why for phase, _, why in seen if phase == "poll")


def model_operations(model, batch: int) -> int:
    """ATen operations of the model's own forward and backward to the input (weights frozen)."""
    clips = bundled("digits", "test").float_videos(slice(0, batch)).to(DEVICE)
    with model.attack_mode():
        for counting in (False, True):  # the first pass warms up lazy initialisation
            mode = Phases()
            x = clips.clone().requires_grad_()
            with mode if counting else torch.no_grad():
                if counting:
                    torch.autograd.grad(model.logits(x).sum(), x)
    return len(mode.seen)


def step_operations(seen, step: str) -> tuple[int, int]:
    """(ATen operations, Triton launches) of one step."""
    ops = [func for phase, func, _ in seen if phase == step]
    launches = sum(func == "triton launch" for func in ops)
    return len(ops) - launches, launches


def test_operations_per_step_do_not_grow_with_the_batch(monkeypatch):
    """Fixed shapes and masks: a step of 32 videos issues exactly the operations of a step of 2."""
    small, _ = traced_run(monkeypatch, batch=2, steps=2, poll_every=3)
    large, _ = traced_run(monkeypatch, batch=32, steps=2, poll_every=3)
    assert step_operations(small, "step 1") == step_operations(large, "step 1")  # the second step of each


def test_a_step_on_the_triton_kernels_costs_few_operations_besides_the_model(monkeypatch):
    """The path CUDA takes (on the CPU through Triton's interpreter, whose own torch operations are not
    counted: on CUDA a launch issues none). Two videos: the interpreter is slow, and the count does not depend
    on the batch (test above); the no-read rule is checked on this path too."""
    monkeypatch.setenv("SAVA_BACKEND", "triton")
    # Imported before the trace, as any earlier launch imports them: a kernel module's one-time constants (the
    # SSIM window's taps, read to the host as it loads) are not a step's reads.
    for module in ("perturb", "ssim", "ssim_one_pass", "update"):
        importlib.import_module(f"sava.kernels.fused.{module}")
    seen, model = traced_run(monkeypatch, batch=2, steps=1, poll_every=2)
    assert [(phase, why) for phase, _, why in seen if why and phase != "poll"] == []
    operations, launches = step_operations(seen, "step 1")
    outside_model = operations - model_operations(model, 2)
    # perturbation forward and backward, SSIM forward and backward, one Adam launch for flow and noise
    assert launches == 5
    assert 0 < outside_model <= 80, (operations, outside_model)


def test_results_do_not_depend_on_how_often_the_host_polls():
    clips = bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 7)), clips.labels[:7]

    def run(poll_every):
        attack = DeepSAVA(load_bundled("tsn-digits", device=DEVICE), frames=2, selector="first", max_iters=40,
                          batch_size=3)
        attack.poll_every = poll_every
        return attack.run(videos, labels).results

    every, eighth = run(1), run(8)
    assert len({r.iterations for r in every if r.attacked}) > 1  # videos finish at different steps
    for a, b in zip(every, eighth):
        ra, rb = a.record(), b.record()
        ra.pop("seconds"), rb.pop("seconds")
        # Finished videos ride along, masked, until a poll: the steps' batch widths differ, and so may the
        # rounding of the model's batched products (test_graphs.BATCH_ROUNDING); every decision is exact.
        assert ra.keys() == rb.keys()
        for key, value in ra.items():
            measured = isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float))
            assert value == (pytest.approx(rb[key], rel=1e-4, abs=1e-6) if measured else rb[key]), key
        for x, y in ((a.flow, b.flow), (a.noise, b.noise)):
            assert (x is None) == (y is None)
            if x is not None:
                torch.testing.assert_close(y, x, atol=1e-4, rtol=0)


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA graphs need a CUDA device")
def test_replayed_cuda_graph_steps_give_the_eager_attack():
    import warnings

    model = load_bundled("tsn-digits", device=DEVICE)
    attack = DeepSAVA(model, frames=2, selector="first", max_iters=30, batch_size=4)

    def run(graphs: bool):
        loop = SparseAttackLoop(model, attack.perturbation, attack.objective, targeted=False, max_iters=30,
                                budget=attack.budget, capacity=4, cuda_graphs=graphs)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a failed capture falls back with a warning
            results = {r.video_id: r for r in loop.run(jobs(7, frames=2))}
        return results, loop

    eager, _ = run(False)
    graphed, loop = run(True)
    assert loop.graphs is not None and loop.graphs.graphs, "no step was captured"
    assert len({r.iterations for r in eager.values()}) > 1
    for video_id, a in eager.items():
        b = graphed[video_id]
        # The graphed steps run the slots in power-of-two batches: the same arithmetic per video, up to the
        # model's batch-size-dependent rounding.
        assert (a.success, a.frames) == (b.success, b.frames)
        assert abs(a.iterations - b.iterations) <= 1
        if a.iterations == b.iterations:
            torch.testing.assert_close(b.noise, a.noise, atol=1e-4, rtol=0)
