"""The papers' metrics on hand-made results, computed by hand."""

from __future__ import annotations

import pytest

from sava import VideoResult, summarise


def result(video_id, attacked=True, success=False, frames=(0,), ssim=(0.95,), l21=0.05, queries=10, mean_abs=0.01,
           iterations=5):
    return VideoResult(video_id, 0, 0, attacked, success=success, frames=list(frames), ssim=list(ssim), l21=l21,
                       queries=queries, mean_abs=mean_abs, iterations=iterations, num_frames=16)


def test_summary_follows_the_definitions():
    results = [
        result("a", success=True, frames=(0, 1), ssim=(0.9, 0.98), l21=0.04, queries=12, mean_abs=0.002,
               iterations=10),
        result("b", success=True, frames=(3,), ssim=(0.96,), l21=0.02, queries=4, mean_abs=0.004, iterations=2),
        result("c", success=False, frames=(0, 1, 2, 3), ssim=(0.99,) * 4, l21=0.09, queries=101),
        result("d", attacked=False, frames=(), ssim=()),
    ]
    s = summarise(results, seconds=2.0)
    fr = 2 / 3
    assert (s.videos, s.attacked, s.successes) == (4, 3, 2) and s.fooling_rate == pytest.approx(fr)
    assert s.ani == pytest.approx(6.0)
    assert s.mq == pytest.approx(8.0)  # over successes only
    assert s.map == pytest.approx(0.003)
    assert s.sr == pytest.approx(((16 - 2) / 16 + (16 - 1) / 16 + (16 - 4) / 16) / 3)  # share left clean
    assert s.frames_per_video == pytest.approx(7 / 3)
    assert s.aap_ssim == pytest.approx(((0.06 + 0.04) / 2) * fr + 0.08 * (1 - fr))
    assert s.aap_l21 == pytest.approx(0.03 * fr + 0.1 * (1 - fr))
    assert s.asp_ssim == pytest.approx((0.94 + 0.96) / 2)
    assert s.min_ssim == pytest.approx(0.9) and s.videos_per_second == pytest.approx(2.0)


def test_no_success_leaves_the_success_means_empty():
    s = summarise([result("a")], seconds=1.0)
    assert s.fooling_rate == 0 and s.ani is None and s.mq is None and s.map is None
    assert s.aap_ssim == pytest.approx(0.08) and s.aap_l21 == pytest.approx(0.1)
