"""Adversarial training against sparse combined perturbations (DeepSAVA
section 3.5): defences, a resumable trainer, and the Table 11 evaluation."""

from .defences import DEFENCES, PGD, Combined, Defence, Injected, make_defence
from .trainer import TrainConfig, clean_accuracy, train

__all__ = ["DEFENCES", "PGD", "Combined", "Defence", "Injected", "TrainConfig", "clean_accuracy", "make_defence",
           "train"]
