"""sava: sparse adversarial attacks on video classifiers.

    import sava
    model = sava.load_model("c3d-camera")
    clips = sava.load_dataset("camera", "test")
    run = sava.DeepSAVA(model, frames=1).run(clips.float_videos(slice(0, 8)), clips.labels[:8])
    print(run.summary.fooling_rate)
"""

from pathlib import Path

__version__ = (Path(__file__).parent / "VERSION").read_text().strip()

from . import kernels  # noqa: E402
from .attacks import (  # noqa: E402
    AttackRun,
    AttentionGuided,
    Budget,
    DeepSAVA,
    GradientKeyframe,
    LinfAttack,
    Sparse,
    SparseFlickering,
    TemporalTranslation,
    make_attack,
)
from .data import Sampling, load_dataset  # noqa: E402
from .errors import ConfigError, DataError, InputError, ModelError, SavaError  # noqa: E402
from .metrics import RunSummary, VideoResult, summarise  # noqa: E402
from .models import ModelInfo, VideoModel, load_model  # noqa: E402
from .selection import Explicit, FirstK, RandomK, Selector  # noqa: E402


def _native_bindings():
    from . import native

    return native


kernels.dispatch.provide_native(_native_bindings)  # the C library for backend "native", loaded on first use

__all__ = [
    "AttackRun", "AttentionGuided", "Budget", "ConfigError", "DataError", "DeepSAVA", "Explicit", "FirstK",
    "GradientKeyframe", "InputError", "LinfAttack", "ModelError", "ModelInfo", "RandomK", "RunSummary", "Sampling",
    "SavaError", "Selector", "Sparse", "SparseFlickering", "TemporalTranslation", "VideoModel", "VideoResult",
    "__version__", "load_dataset", "load_model", "make_attack", "summarise",
]
