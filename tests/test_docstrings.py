"""The examples in the public API's docstrings run and print what they say (doctest)."""

from __future__ import annotations

import doctest

import pytest
import torch

from sava import attacks, kernels
from sava.attacks import attention, deepsava, flicker, keyframe, linf, sparse
from sava.kernels import dispatch

DOCUMENTED = [
    (attacks, "make_attack"), (deepsava, "DeepSAVA"), (sparse, "Sparse"), (flicker, "SparseFlickering"),
    (keyframe, "GradientKeyframe"), (linf, "LinfAttack"), (attention, "AttentionGuided"),
    *((dispatch, name) for name in ("perturb_frames", "perturb_selected", "apply_perturbation", "ssim",
                                    "masked_adam_step_", "masked_sign_step_")),
]


@pytest.mark.parametrize("module, name", DOCUMENTED, ids=[name for _, name in DOCUMENTED])
def test_the_docstring_example_runs(module, name, monkeypatch):
    monkeypatch.setenv("SAVA_BACKEND", "reference")  # the examples show the operation, not a backend
    obj = getattr(module, name)
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs={**vars(module), "torch": torch})
    assert tests and tests[0].examples, f"{name} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{name}'s example does not print what it says (see the output above)"
    if module is dispatch:  # what users call: sava.kernels' names are these functions
        assert getattr(kernels, name) is obj
