"""The C library's own suite (ctest): on the build the README's set-up makes,
under AddressSanitizer and UBSan in a fresh build, and a separate consumer
project that finds the installed library with find_package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("cc") is None,
                                 reason="needs cmake and a C compiler")


def run(*command, cwd=None):
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@needs_cmake
def test_ctest_passes_under_address_sanitizer(tmp_path):
    build = tmp_path / "asan"
    run("cmake", "-S", str(ROOT), "-B", str(build), "-DSAVA_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug")
    run("cmake", "--build", str(build), "-j", "2")
    assert "100% tests passed" in run("ctest", "--test-dir", str(build), "--output-on-failure")


@needs_cmake
def test_an_installed_library_is_found_by_a_consumer_project(tmp_path):
    build, prefix, consumer = tmp_path / "build", tmp_path / "prefix", tmp_path / "consumer"
    run("cmake", "-S", str(ROOT), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DSAVA_BUILD_TESTS=OFF")
    run("cmake", "--build", str(build), "-j", "2")
    run("cmake", "--install", str(build))
    assert (prefix / "include" / "sava" / "sava.h").is_file()
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler for the consumer project")
    run("cmake", "-S", str(ROOT / "bindings" / "tests" / "consumer"), "-B", str(consumer),
        f"-DCMAKE_PREFIX_PATH={prefix}")
    run("cmake", "--build", str(consumer))
    assert "SSIM of frame 0" in run(str(consumer / "consumer"))
