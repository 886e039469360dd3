"""Frame selectors: the searches against known optima, then against each other on a real model."""

from __future__ import annotations

import pytest
import torch

from sava import ConfigError, DeepSAVA
from sava.data import bundled
from sava.models import load_bundled
from sava.selection import Explicit, FirstK, RandomK, make_selector
from sava.selection.saliency import Saliency
from sava.selection.search import BayesOpt, BruteForce
from tests.device import DEVICE

T = 16


def synthetic_score(best_frames: torch.Tensor, calls: list):
    """Loss = squared distance (in frames) of the chosen frames to each video's
    own optimum: smooth in time, as frame importance is around an event."""

    def score(frame_idx, steps):
        calls.append(frame_idx.clone())
        return ((frame_idx.float() - best_frames.view(-1, 1).float()) ** 2).sum(dim=1) / 10

    return score


def test_brute_force_returns_each_videos_argmin():
    best = torch.tensor([0, 7, 15, 3])
    calls = []
    videos = torch.zeros(4, T, 3, 12, 12)
    pick = BruteForce(steps=1).select(None, videos, None, 1, score=synthetic_score(best, calls))
    assert pick.view(-1).tolist() == best.tolist() and len(calls) == T


def test_brute_force_over_pairs():
    # Loss (i - 5)^2 + (j - 5)^2 over the 15 pairs of 6 frames: (4, 5) is the unique minimum.
    selector = BruteForce(steps=1)
    pick = selector.select(None, torch.zeros(2, 6, 3, 12, 12), None, 2,
                           score=lambda idx, s: ((idx.float() - 5) ** 2).sum(1))
    assert pick.tolist() == [[4, 5], [4, 5]] and selector.evaluations == 15


def test_bayes_opt_finds_most_optima_with_half_the_evaluations():
    torch.manual_seed(0)
    best = torch.randint(T, (24,))
    calls = []
    selector = BayesOpt(evaluations=8, initial=2, steps=1, seed=1, start="random")
    pick = selector.select(None, torch.zeros(24, T, 3, 12, 12), None, 1, score=synthetic_score(best, calls))
    found = (pick.view(-1) == best).float().mean()
    assert len(calls) == 8 < T
    assert found >= 0.8, f"BO found the optimum for {found:.0%} of videos"
    tried = torch.stack(calls, dim=1).squeeze(-1)  # videos x evaluations
    assert all(len(set(row)) == len(row) for row in tried.tolist()), "a candidate was scored twice"


def test_bayes_opt_samples_candidates_when_there_are_too_many():
    # C(32, 4) = 35960 sets: each step draws a sample; the pick is the best set it scored.
    selector = BayesOpt(evaluations=5, steps=1, start="random")
    score = lambda idx, s: (idx.float() - 11).abs().sum(1)  # noqa: E731
    pick = selector.select(None, torch.zeros(2, 32, 3, 12, 12), None, 4, score=score)
    assert pick.shape == (2, 4) and all(len(set(row)) == 4 for row in pick.tolist())
    assert torch.equal(score(pick, 1).double(), selector.losses.min(dim=1).values)


def test_bayes_opt_reaches_brute_forces_outcome_on_a_real_model():
    model, clips = load_bundled("c3d-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 8)), clips.labels[:8]
    brute, bo = BruteForce(steps=5), BayesOpt(evaluations=6, steps=5)
    by_brute = DeepSAVA(model, selector=brute, max_iters=40).run(videos, labels)
    by_bo = DeepSAVA(model, selector=bo, max_iters=40).run(videos, labels)
    same = [a.success == b.success for a, b in zip(by_brute.results, by_bo.results) if a.attacked]
    assert bo.evaluations < brute.evaluations == T
    assert sum(same) >= 0.85 * len(same), f"same outcome on {sum(same)} of {len(same)} videos"


def test_bayes_opt_can_start_from_the_saliency_pick():
    model, clips = load_bundled("tsn-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 4)), clips.labels[:4]
    selector = make_selector("bo:saliency", evaluations=3, score_steps=1)
    assert repr(selector) == "bo" and repr(make_selector("bo:random")) == "bo:random"
    calls = []
    score = lambda idx, s: calls.append(idx) or idx[:, 0].double()  # noqa: E731 -- earlier frames score better
    pick = selector.select(model, videos, labels, 2, score=score)
    assert torch.equal(calls[0], Saliency().select(model, videos, labels, 2))
    assert len(calls) == 3 and selector.queries == 3 * 2 + 1
    candidates = torch.stack(calls, dim=1)  # videos x evaluations x k
    best = candidates[:, :, 0].argmin(dim=1)
    assert torch.equal(pick, candidates[torch.arange(4), best])
    assert selector.initial == 1 and make_selector("bo:random").initial == 2  # then the surrogate's picks
    with pytest.raises(ConfigError, match="random or the saliency"):
        BayesOpt(start="ifd")


def test_selectors_return_distinct_frames_in_range():
    model, clips = load_bundled("tsn-digits", device=DEVICE), bundled("digits", "test")
    videos, labels = clips.float_videos(slice(0, 3)), clips.labels[:3]
    for selector in (FirstK(), RandomK(3), Explicit([2, 9, 4]), Saliency()):
        pick = selector.select(model, videos, labels, 3)
        assert pick.shape == (3, 3) and pick.dtype == torch.int64
        assert all(len(set(row)) == 3 and all(0 <= f < T for f in row) for row in pick.tolist()), selector


def test_search_selectors_need_the_generator_and_sane_settings():
    with pytest.raises(ConfigError, match="scores frames with the attack's generator"):
        make_selector("bo").select(None, torch.zeros(1, T, 3, 12, 12), None, 1)
    with pytest.raises(ConfigError, match="more than"):
        BruteForce(max_subsets=10).select(None, torch.zeros(1, T, 3, 12, 12), None, 2, score=lambda i, s: 0)
    with pytest.raises(ConfigError, match="initial"):
        BayesOpt(evaluations=2, initial=3)


def test_inter_frame_difference_picks_the_frames_around_the_motion():
    videos = torch.zeros(2, 8, 1, 12, 12)
    videos[0, 5:] = 1.0  # a cut between frames 4 and 5
    videos[1, 2:] = 0.5  # a change between frames 1 and 2
    pick = make_selector("ifd").select(None, videos, None, 2)
    assert pick.tolist() == [[4, 5], [1, 2]]


@pytest.mark.parametrize("selector", [BruteForce(steps=1), BayesOpt(evaluations=4, initial=2, steps=1,
                                                                     start="random")])
def test_search_selectors_report_each_candidate_they_score(selector):
    best, calls, reported = torch.tensor([2, 9, 14]), [], []
    selector.progress = lambda scored, total, videos: reported.append((scored, total, videos))
    selector.select(None, torch.zeros(3, T, 3, 12, 12), None, 1, score=synthetic_score(best, calls))
    total = T if isinstance(selector, BruteForce) else 4
    assert reported == [(i, total, 3) for i in range(1, total + 1)] and len(calls) == total


def test_a_dataset_run_with_a_search_selector_shows_a_frame_search_bar(tmp_path, capfd):
    from sava.cli import main

    code = main(["attack", "--model", "tsn-digits", "--data", "digits", "--num-videos", "2", "--selector", "brute",
                 "--score-steps", "1", "--iters", "2", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 0
    err = capfd.readouterr().err
    assert "frame search, " in err and f"{T}/{T}" in err


def test_bayes_opt_stops_searching_for_a_video_once_a_candidate_fools_it():
    """Video 0 is fooled by frame 3 alone, video 1 by nothing: after video 0's first fooling candidate only
    video 1 is scored (``rows``), and the search ends early once every video is done."""
    seen = []

    def score(frame_idx, steps, rows=None):
        rows = torch.arange(len(frame_idx)) if rows is None else rows
        seen.append(rows.tolist())
        fooled = (rows == 0) & (frame_idx[:, 0] == 3)
        return frame_idx[:, 0].double(), fooled

    selector = BayesOpt(evaluations=6, initial=2, steps=1, start="random", seed=0)
    selector.select(None, torch.zeros(2, 4, 3, 12, 12), None, 1, score=score)
    first_fool = next(i for i, rows in enumerate(seen) if 0 in rows and selector.tried[0, i, 0] == 3)
    assert all(rows == [1] for rows in seen[first_fool + 1:])
    assert selector.fooled[0].any() and int(selector.spent[0]) == first_fool + 1
    pick = selector.select(None, torch.zeros(2, 4, 3, 12, 12), None, 1,
                           score=lambda idx, steps, rows=None: (idx[:, 0].double(), torch.ones(len(idx), dtype=bool)))
    assert selector.evaluations == 1 and pick.shape == (2, 1)  # everything fooled at once: one round
