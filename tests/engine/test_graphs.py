"""The step's CUDA-graph path and the settings around it, held to the eager step.

On CUDA: replaying captured steps gives the eager attack at the same (rounded) widths, near bitwise, for every
sparse method and budget, bf16, a widening run, a second run on the same loop and a capture that fails. On the
CPU the same cases run eagerly at the rounded widths (idle slots riding along, masked) against the exact
widths, and the lagged poll against the immediate one: the settings the graph path turns on change no result.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from sava import DeepSAVA, GradientKeyframe, Sparse, SparseFlickering
from sava.attacks.loop import SparseAttackLoop
from sava.attacks.perturbations import FlowNoise
from sava.attacks.slots import Job
from sava.data import bundled
from sava.metrics import VideoResult
from sava.models import load_bundled
from tests.device import DEVICE, ON_CUDA

torch.set_num_threads(2)
VIDEOS = 7  # batch 4: the steps shrink from 4 slots to 3 (rounded to 4), 2 and 1
# Runs whose steps see other batch widths (rounded widths; finished videos riding along, masked, until a poll)
# agree in flow and noise to rounding only: oneDNN's convolutions and the BLAS's matrix products round by batch
# size on some CPUs (2e-5 after 20 steps on an AMD EPYC, bitwise equal on others). Every decision (iterations,
# success, frames, prediction) must still agree exactly, and a state stepped once too often or not at all moves
# by a learning rate (0.1 px of flow, 0.016 of noise), far outside this.
BATCH_ROUNDING = 1e-4


def refined_sparse(model):
    attack = Sparse(model, frames=2, max_iters=20, batch_size=4, min_ssim=None)
    attack.refine = True  # runs every video to the cap, keeping its smallest success
    return attack


def bf16_deepsava(model):
    model.precision = "bf16"
    return DeepSAVA(model, frames=1, selector="first", max_iters=20, batch_size=4)


CASES = {
    "deepsava": lambda m: DeepSAVA(m, frames=2, selector="first", max_iters=30, batch_size=4),
    "sparse": lambda m: Sparse(m, frames=2, max_iters=30, batch_size=4, min_ssim=None),
    "flicker": lambda m: SparseFlickering(m, frames=2, max_iters=30, batch_size=4),
    "keyframe (widening)": lambda m: GradientKeyframe(m, max_iters=20, batch_size=4),
    "refine": refined_sparse,
    "min-ssim": lambda m: DeepSAVA(m, frames=2, selector="first", max_iters=30, min_ssim=0.99, batch_size=4),
    "max-l21": lambda m: Sparse(m, frames=2, max_iters=30, max_l21=0.06, batch_size=4, min_ssim=None),
    "bf16": bf16_deepsava,
}


def clips(count: int = VIDEOS):
    data = bundled("digits", "test")
    return data.float_videos(slice(0, count)), data.labels[:count]


def run_case(case: str, **options):
    attack = CASES[case](load_bundled("tsn-digits", device=DEVICE))
    for name, value in options.items():
        setattr(attack, name, value)
    videos, labels = clips()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture falls back with a warning
        return attack.run(videos, labels).results


def assert_same_results(a: list[VideoResult], b: list[VideoResult], atol: float) -> None:
    for x, y in zip(a, b):
        assert (x.video_id, x.attacked, x.success, x.frames, x.iterations, x.final_pred) == \
               (y.video_id, y.attacked, y.success, y.frames, y.iterations, y.final_pred)
        for p, q in ((x.flow, y.flow), (x.noise, y.noise)):
            assert (p is None) == (q is None)
            if p is not None:
                torch.testing.assert_close(q, p, atol=atol, rtol=0)
        assert x.ssim == pytest.approx(y.ssim, abs=max(atol, 1e-7))


def attacked_some(results: list[VideoResult]) -> None:
    attacked = [r for r in results if r.attacked]
    assert len(attacked) >= 3, "too few clean-correct clips to compare"
    assert any(r.iterations > 0 for r in attacked)


@pytest.mark.parametrize("case", list(CASES))
def test_rounded_widths_give_the_exact_widths_results(case):
    """What the graph path changes besides replay: each step runs a power-of-two number of slots."""
    exact = run_case(case, cuda_graphs=False, round_widths=False)
    rounded = run_case(case, cuda_graphs=False, round_widths=True)
    attacked_some(exact)
    assert_same_results(exact, rounded, atol=BATCH_ROUNDING if case != "bf16" else 1e-2)


@pytest.mark.parametrize("poll_every", [1, 3])
def test_a_lagged_poll_gives_the_immediate_polls_results(poll_every):
    """Reading the finished flags one step late (CUDA's default) leaves every result as it is: a finished
    video's state is frozen from the step it finished (to the rounding of the batch widths, which differ)."""
    immediate = run_case("deepsava", cuda_graphs=False, lagged_poll=False, poll_every=poll_every)
    lagged = run_case("deepsava", cuda_graphs=False, lagged_poll=True, poll_every=poll_every)
    attacked_some(immediate)
    assert len({r.iterations for r in immediate if r.attacked}) > 1  # videos finish at different steps
    assert_same_results(immediate, lagged, atol=BATCH_ROUNDING)


def deepsava_loop(model, capacity: int = 4, **options) -> tuple[SparseAttackLoop, DeepSAVA]:
    attack = DeepSAVA(model, frames=2, selector="first", max_iters=25, batch_size=capacity)
    loop = SparseAttackLoop(model, attack.perturbation, attack.objective, targeted=False, max_iters=25,
                            budget=attack.budget, capacity=capacity, **options)
    return loop, attack


def jobs(videos, labels, frames=(0, 1)):
    return [Job(videos[i], torch.tensor(frames), int(labels[i]), VideoResult(f"v{i}", int(labels[i]), -1, True))
            for i in range(len(videos))]


def test_a_second_run_on_the_same_loop_reuses_its_slots_and_gives_a_fresh_loops_results():
    """Search selectors score every candidate on one loop (its slots and, on CUDA, its graphs)."""
    model = load_bundled("tsn-digits", device=DEVICE)
    videos, labels = clips()
    loop, _ = deepsava_loop(model)
    first = sorted(loop.run(jobs(videos, labels)), key=lambda r: r.video_id)
    slots = loop.slots
    second = sorted(loop.run(jobs(videos, labels)), key=lambda r: r.video_id)
    assert loop.slots is slots
    fresh_loop, _ = deepsava_loop(model)
    fresh = sorted(fresh_loop.run(jobs(videos, labels)), key=lambda r: r.video_id)
    assert_same_results(first, fresh, atol=0)
    assert_same_results(second, fresh, atol=0)
    # Other frames per video: new slots.
    third = list(loop.run(jobs(videos[:2], labels[:2], frames=(0, 1, 2))))
    assert loop.slots is not slots and len(third) == 2


def test_a_video_is_charged_its_share_of_the_steps_it_was_in():
    model = load_bundled("tsn-digits", device=DEVICE)
    videos, labels = clips()
    loop, _ = deepsava_loop(model)
    results = list(loop.run(jobs(videos, labels)))
    assert all(r.seconds > 0 for r in results)
    # The longest-running video was in the most steps; the shortest's share cannot exceed it.
    longest = max(results, key=lambda r: r.iterations)
    shortest = min(results, key=lambda r: r.iterations)
    assert longest.iterations > shortest.iterations and longest.seconds > shortest.seconds


# --------------------------------------------------------------------------- CUDA only
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="CUDA graphs need a CUDA device")


@needs_cuda
@pytest.mark.parametrize("case", list(CASES))
def test_replayed_graphs_give_the_eager_steps_at_the_same_widths(case):
    eager = run_case(case, cuda_graphs=False, round_widths=True)
    graphed = run_case(case, cuda_graphs=True)
    attacked_some(eager)
    assert_same_results(eager, graphed, atol=1e-6 if case != "bf16" else 1e-3)


@needs_cuda
def test_graphs_share_one_pool_and_stale_graphs_are_dropped():
    model = load_bundled("tsn-digits", device=DEVICE)
    videos, labels = clips()
    loop, _ = deepsava_loop(model, cuda_graphs=True)
    list(loop.run(jobs(videos, labels)))
    graphs = loop.graphs
    assert graphs is not None and graphs.graphs, "no step was captured"
    captured = dict(graphs.graphs)
    list(loop.run(jobs(videos, labels)))  # same slots: the graphs are replayed, not captured anew
    assert all(graphs.graphs[key] is graph for key, graph in captured.items() if key in graphs.graphs)
    list(loop.run(jobs(videos[:3], labels[:3], frames=(0, 1, 2))))  # new slots: every old graph is dropped
    assert not any(graph is old for graph in graphs.graphs.values() for old in captured.values())


class HostReading(FlowNoise):
    """A perturbation that reads a value on the host at every application: fine eagerly, fatal to a capture."""

    def apply(self, clean, params, rows=None):
        float(params["noise"].sum())
        return super().apply(clean, params, rows)


@needs_cuda
def test_a_failed_capture_reports_its_first_error_restores_the_stream_and_runs_eagerly():
    model = load_bundled("tsn-digits", device=DEVICE)
    videos, labels = clips()
    reference, attack = deepsava_loop(model, cuda_graphs=False, round_widths=True)
    expected = sorted(reference.run(jobs(videos, labels)), key=lambda r: r.video_id)
    loop, _ = deepsava_loop(model, cuda_graphs=True)
    loop.perturbation = loop.settings.perturbation = HostReading("combined")
    stream = torch.cuda.current_stream()
    with pytest.warns(RuntimeWarning, match="capturing") as warned:
        results = sorted(loop.run(jobs(videos, labels)), key=lambda r: r.video_id)
    assert "invalidated" not in str(warned[0].message)  # the step's own error, not the one capture_end adds
    assert loop.graphs is None and loop.capture_error is not None
    assert torch.cuda.current_stream() == stream and not torch.cuda.is_current_stream_capturing()
    assert_same_results(expected, results, atol=1e-6)
