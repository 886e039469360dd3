"""Each sparse method at its defaults, held to floors on a bundled model: the fooling rate a user sees from
``sava attack --method M`` and the SSIM of the frames it perturbs. Sparse's stated trade (README): its
default SSIM budget keeps the one frame recognisable, so only its SSIM is floored."""

from __future__ import annotations

import pytest

from sava import make_attack
from sava.attacks.sparse import DEFAULT_MIN_SSIM
from sava.data import bundled
from sava.models import load_bundled
from tests.device import DEVICE

FLOORS = {  # method: (least fooling rate, least mean SSIM over the perturbed frames)
    "deepsava": (0.9, 0.9),
    "flicker": (0.9, 0.9),
    "keyframe": (0.9, 0.9),
    "sparse": (0.0, DEFAULT_MIN_SSIM),
}


@pytest.fixture(scope="module")
def model():
    return load_bundled("c3d-camera", device=DEVICE)  # the default model of sava attack


@pytest.fixture(scope="module")
def few():
    clips = bundled("camera", "test")
    return clips.float_videos(slice(0, 8)), clips.labels[:8]


@pytest.mark.parametrize("method", list(FLOORS))
def test_defaults_fool_and_stay_imperceptible(model, few, method):
    videos, labels = few
    summary = make_attack(method, model).run(videos, labels).summary
    least_fr, least_ssim = FLOORS[method]
    assert summary.attacked >= 6  # the model gets these clips right: the floors are measured on enough videos
    assert summary.fooling_rate >= least_fr, f"{method}: FR {summary.fooling_rate:.1%}"
    assert summary.mean_ssim >= least_ssim - 1e-4, f"{method}: mean SSIM {summary.mean_ssim:.3f}"
    if method == "flicker":  # the whole clip flickers, as in Pony et al.
        assert summary.frames_per_video == videos.shape[1]
