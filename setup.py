"""Packaging: the folder ``engine/`` is the package ``sava`` and ``kernels/`` is ``sava.kernels``."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = (ROOT / "engine" / "VERSION").read_text().strip()

ONNX = ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"]
engine_packages = ["sava"] + ["sava." + name for name in find_packages("engine")]

setup(
    name="sava",
    version=VERSION,
    description="Sparse adversarial video attacks (DeepSAVA and its siblings), fast, with transfer evaluation",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir={"sava": "engine", "sava.kernels": "kernels"},
    packages=engine_packages + ["sava.kernels", "sava.kernels.fused"],
    package_data={"sava": ["VERSION"], "sava.models": ["weights/*.safetensors"]},
    # torch is left loose above its floor so a GPU user keeps the CUDA build they already have; README's set-up
    # command pins the CPU wheel for everyone else. Floors: the suite has passed on torch 2.13 with Triton 3.9
    # (CPU, interpreter); 2.11 with Triton 3.6 is the GPU runner's image, kept installable for its suite run.
    # Nothing older is tried: the kernels use torch.library.custom_op and Triton 3.x's interpreter.
    install_requires=[
        "torch>=2.11",
        "numpy>=1.24",
        "safetensors>=0.4",
        "av>=18.1",  # VideoFrame.rotation (portrait footage upright); a one-thread reformat (fork-safe in workers)
        "scikit-learn>=1.3",
        "scikit-video>=1.1.11",
        "tqdm>=4.60",
        "pillow>=9",
        "botorch>=0.12",  # Gaussian-process surrogate of the bo frame selector
        "matplotlib>=3.6",  # plots of sava reproduce
    ],
    # triton comes with CUDA builds of torch; on CPU the tests run its interpreter. ONNX export and the
    # ONNX Runtime black box are an extra: a GPU user installs onnxruntime-gpu instead (same import name).
    extras_require={
        "onnx": ONNX,
        "hf": ["transformers>=4.40"],  # --model hf:FOLDER
        # benchmarks/bench_peers.py: ART and scikit-image's SSIM. torchattacks goes in with --no-deps: it pins an
        # old requests and pulls a torchvision that need not match the installed torch (its PGD needs neither).
        "peers": ["adversarial-robustness-toolbox>=1.17", "scikit-image>=0.22"],
        "torchvision": ["torchvision>=0.26"],  # --model torchvision:NAME; must be the build made for the torch
        "test": ["pytest>=7", "pytorch-msssim>=1.0", "triton>=3.6", "transformers>=4.40", *ONNX],
    },
    entry_points={"console_scripts": ["sava=sava.cli:main"]},
)
