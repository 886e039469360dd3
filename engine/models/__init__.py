"""Target models: the adapter, the bundled architectures and weights, loaders."""

from .adapter import ModelInfo, VideoModel, check_videos
from .bundled import DEFAULT_MODEL, bundled_names, load_bundled
from .loading import load_model

__all__ = ["DEFAULT_MODEL", "ModelInfo", "VideoModel", "bundled_names", "check_videos", "load_bundled", "load_model"]
