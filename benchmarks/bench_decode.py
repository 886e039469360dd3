"""Decoding a clip of a video file: from the keyframe before each wanted frame (``decode_frames``) against
every frame from the file's start (``decode_from_start``), on H.264 files of a few lengths written here.

    python benchmarks/bench_decode.py --out benchmarks/results/decode.jsonl   # CPU: decoding runs on the host
    python benchmarks/bench_decode.py --tiny                                   # proves it runs
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from harness import Case, arguments, print_table, run_cases

from sava.data.sampling import clip_indices
from sava.data.video_io import decode_frames, decode_from_start, frame_count

CLIP = (16, 112, 112)  # frames, height, width of the clip taken
GROUP = 30  # frames per group of pictures: one keyframe a second at 30 fps, as phones and cameras write


def write_h264(path: Path, frames: int, height: int, width: int) -> None:
    """A panning view of a random picture: every frame differs, as footage does."""
    import av

    picture = np.random.default_rng(0).integers(0, 256, (height, width + 200, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(GROUP)}
        for i in range(frames):
            shift = i % 200
            image = np.ascontiguousarray(picture[:, shift:shift + width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def cases(args, folder: Path) -> list[Case]:
    sizes = [(90, 120, 160)] if args.tiny else [(300, 720, 1280), (1800, 720, 1280), (900, 1080, 1920)]
    out = []
    for frames, height, width in sizes:
        path = folder / f"pan-{frames}x{height}x{width}.mp4"
        write_h264(path, frames, height, width)
        keep = set(clip_indices(frame_count(path), CLIP[0]))
        # B, T, C, H, W, k as the harness's rows name them: one file, its frames, the picture's size
        case = Case("decode", {"B": 1, "T": frames, "C": 3, "H": height, "W": width, "k": CLIP[0],
                               "group": GROUP, "codec": "h264"}, {})
        for name, decode in (("seek", decode_frames), ("from_start", decode_from_start)):
            case.impls[name] = {"clip": partial(decode, path, CLIP[1:], keep)}
        out.append(case)
    return out


if __name__ == "__main__":
    arguments_ = arguments(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        # Decoding runs on the host whatever the attack's device: the rows say so.
        rows = run_cases(cases(arguments_, Path(folder)), "cpu", arguments_.repeats, ["from_start"], arguments_.out)
    print_table(rows)
