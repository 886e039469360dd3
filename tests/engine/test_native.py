"""The C library through ctypes against the Python reference, and its example
program on a perturbation file written by ``sava attack``."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sava import kernels, native
from sava.cli import main
from sava.data import bundled
from sava.kernels import reference
from sava.transfer import from_run_folder, replay


def built() -> bool:
    try:
        native.library()
    except native.NativeError:
        return False
    return True


needs_library = pytest.mark.skipif(not built(), reason=f"the C library is not built ({native.BUILD_COMMAND})")


@needs_library
@pytest.mark.parametrize("noise_shape", ["frame", "flicker", None])
def test_perturb_matches_the_reference(noise_shape):
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 3, 14, 17, generator=generator)
    flow = (torch.rand(2, 3, 2, 14, 17, generator=generator) - 0.5) * 6  # reaches past the border
    noise = {"frame": torch.randn(2, 3, 3, 14, 17, generator=generator) * 0.1,
             "flicker": torch.randn(2, 3, 3, 1, 1, generator=generator) * 0.1, None: None}[noise_shape]
    expected = reference.perturb_frames(frames, flow, noise)
    assert torch.allclose(kernels.perturb_frames(frames, flow, noise, backend="native"), expected, atol=1e-6)
    assert torch.allclose(kernels.perturb_frames(frames, None, noise, backend="native"),
                          reference.perturb_frames(frames, None, noise), atol=1e-6)


@needs_library
def test_ssim_matches_the_reference():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(4, 2, 3, 20, 23, generator=generator)
    y = (x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    assert torch.allclose(kernels.ssim(x, y, backend="native"), reference.ssim(x, y), atol=1e-5)


@needs_library
def test_the_native_backend_has_no_backward():
    flow = torch.zeros(1, 2, 12, 12, requires_grad=True)
    with pytest.raises(native.NativeError, match="no backward"):
        kernels.perturb_frames(torch.rand(1, 3, 12, 12), flow, backend="native")


@needs_library
def test_example_program_on_a_run_folder_matches_python(tmp_path):
    out = tmp_path / "run"
    assert main(["attack", "--no-progress", "--model", "tsn-digits", "--num-videos", "1", "--frames", "2",
                 "--iters", "20", "--out", str(out)]) == 0
    record = json.loads((out / "videos.jsonl").read_text().splitlines()[0])
    clip = bundled("digits", "test").float_videos(0)
    save_file({"video": clip.contiguous()}, str(tmp_path / "clip.safetensors"))
    program = native.library()._name.replace("libsava.so", "sava_apply_perturbation")
    done = subprocess.run([program, str(tmp_path / "clip.safetensors"), str(out / record["perturbation"]),
                           str(tmp_path / "adv.raw")], capture_output=True, text=True, check=True)
    adversarial = torch.from_numpy(np.fromfile(tmp_path / "adv.raw", dtype=np.float32)).view_as(clip)
    expected = replay(clip, from_run_folder(out).results[0])
    assert torch.allclose(adversarial, expected, atol=1e-6)
    printed = [float(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines() if line.startswith("frame ")]
    assert printed == pytest.approx(record["ssim"], abs=1e-5)


def test_a_missing_library_names_the_build_command(monkeypatch, tmp_path):
    native.library.cache_clear()
    monkeypatch.setenv(native.LIBRARY_ENV, str(tmp_path / "libsava.so"))
    try:
        with pytest.raises(native.NativeError, match="cmake -S . -B build"):
            native.library()
    finally:
        native.library.cache_clear()


def cuda_ready() -> bool:
    try:
        import cupy

        return torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 -- no CuPy, or no driver
        return False


@pytest.mark.skipif(not cuda_ready(), reason="needs CuPy and an NVIDIA GPU")
def test_cupy_compiled_kernels_match_the_reference_and_the_library():
    generator = torch.Generator().manual_seed(2)
    video = torch.rand(6, 3, 20, 22, generator=generator)
    frames = torch.tensor([4, 1])
    flow = (torch.rand(2, 2, 20, 22, generator=generator) - 0.5) * 4
    noise = torch.randn(2, 3, 20, 22, generator=generator) * 0.05
    expected = reference.apply_perturbation(video[None], frames[None], flow[None], noise[None])[0]
    got = torch.from_dlpack(native.cuda_apply(video.cuda(), frames, flow.cuda(), noise.cuda())).cpu()
    assert torch.allclose(got, expected, atol=1e-6)
    ssim = torch.from_dlpack(native.cuda_ssim(video.cuda(), got.cuda())).cpu()
    assert torch.allclose(ssim, reference.ssim(video, got), atol=1e-5)
    if built():
        assert torch.allclose(ssim, native.ssim(video, got), atol=1e-5)


@needs_library
def test_every_size_is_checked_before_c_reads_a_buffer():
    """Defect 5: a flow or noise of the wrong size made the library read past its buffers."""
    video = torch.rand(4, 3, 12, 13)
    frames = torch.tensor([0, 2])
    good_flow, good_noise = torch.zeros(2, 2, 12, 13), torch.zeros(2, 3, 12, 13)
    native.apply_perturbation(video, frames, good_flow, good_noise)
    for flow, noise, message in [
        (good_flow[:1], good_noise, "flow must be 2 x 2 x 12 x 13"),
        (good_flow[..., :12], good_noise, "flow must be"),
        (good_flow, good_noise[:1], "noise must be 2 x 3 x 12 x 13"),
        (good_flow, good_noise[:, :2], "noise must be"),
        (None, torch.zeros(2, 3, 1, 13), "noise must be"),
    ]:
        with pytest.raises(native.NativeError, match=message):
            native.apply_perturbation(video, frames, flow, noise)
    with pytest.raises(native.NativeError, match="T x C x H x W"):
        native.apply_perturbation(video[0], frames, good_flow, good_noise)


@needs_library
@pytest.mark.parametrize("which", ["flow", "noise"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_an_error_status_not_nan_pixels(which, value):
    """Defect 6: a NaN flow reached a float-to-integer conversion (undefined) and the call succeeded."""
    video, frames = torch.rand(3, 3, 12, 12), torch.tensor([1])
    flow, noise = torch.zeros(1, 2, 12, 12), torch.zeros(1, 3, 12, 12)
    (flow if which == "flow" else noise)[0, 0, 4, 5] = value
    with pytest.raises(native.NativeError, match="NaN or infinite"):
        native.apply_perturbation(video, frames, flow, noise)
