"""sava beside the libraries a user would pick instead, on the same model and clips, in one run.

    pip install -e ".[peers]" && pip install --no-deps "torchattacks==3.5.1"
    python benchmarks/bench_peers.py --out benchmarks/results/peers.jsonl    # CPU: c3d-camera, 24 clips
    python benchmarks/bench_peers.py --tiny                                  # CI: proves it runs

Pairs (peer, then sava's counterpart at the same settings where the methods share them):

* torchattacks ``PGD`` (eps 8/255, step 2/255, 10 steps, no random start) and sava ``bim``;
* torchattacks ``MIFGSM`` (the same, decay 1.0) and sava ``mi``;
* ART ``FrameSaliencyAttack`` over ART's PGD (the same budget) and sava DeepSAVA at its defaults (one frame);
* ART ``OverTheAirFlickeringPyTorch`` (100 steps) and sava's flicker at its defaults (the whole clip).

Only the clips the model classifies correctly are attacked. Every system runs ``--rounds`` times, the pairs
interleaved (peer, sava, peer, sava, ...), and reports its median seconds per video. Figures per system:
fooling rate, frames changed per video, SSIM by scikit-image on every changed frame (Gaussian window,
sigma 1.5, as Wang et al.), L-infinity, per-pixel l2,1 (``sava.kernels.l21_norm``), seconds per video and,
on sava's rows, the peer's seconds over sava's. torchattacks is used without torchvision, which it lists as
a dependency but does not need for these attacks (and which does not import beside a CPU torch from
another index).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from harness import append_rows

from sava import make_attack
from sava.data import bundled
from sava.kernels import l21_norm
from sava.models import load_bundled
from sava.provenance import environment
from sava.transfer import replay

EPSILON, STEP, STEPS = 8 / 255, 2 / 255, 10


class Logits(torch.nn.Module):
    """The white-box model as the peers take it: ``B x T x C x H x W`` in [0, 1] to logits."""

    def __init__(self, model, channels_last: bool = False):
        super().__init__()
        self.model, self.channels_last = model, channels_last

    def forward(self, videos):
        # ART's flickering attack hands clips as B x T x H x W x C.
        return self.model.logits(videos.permute(0, 1, 4, 2, 3) if self.channels_last else videos)


def art_classifier(model, clip_shape, channels_last=False):
    """ART's wrapper of the same model (on the model's device)."""
    from art.estimators.classification import PyTorchClassifier

    t, c, h, w = clip_shape
    return PyTorchClassifier(Logits(model, channels_last), loss=torch.nn.CrossEntropyLoss(),
                             input_shape=(t, h, w, c) if channels_last else (t, c, h, w),
                             nb_classes=len(model.classes), clip_values=(0.0, 1.0),
                             device_type="gpu" if model.device.type == "cuda" else "cpu")


def peer_systems(model, clip_shape, flicker_steps):
    import torchattacks
    from art.attacks.evasion import FrameSaliencyAttack, OverTheAirFlickeringPyTorch, ProjectedGradientDescent

    net = Logits(model).eval()
    pgd = torchattacks.PGD(net, eps=EPSILON, alpha=STEP, steps=STEPS, random_start=False)
    mifgsm = torchattacks.MIFGSM(net, eps=EPSILON, alpha=STEP, steps=STEPS, decay=1.0)
    classifier = art_classifier(model, clip_shape)
    saliency = FrameSaliencyAttack(classifier, ProjectedGradientDescent(
        classifier, eps=EPSILON, eps_step=STEP, max_iter=STEPS, verbose=False), frame_index=1, verbose=False)
    flicker = OverTheAirFlickeringPyTorch(art_classifier(model, clip_shape, channels_last=True),
                                          max_iter=flicker_steps, verbose=False)
    to_numpy = lambda v: v.numpy()  # noqa: E731
    return {
        "torchattacks PGD": lambda v, y: pgd(v.to(model.device), y.to(model.device)),
        "torchattacks MI-FGSM": lambda v, y: mifgsm(v.to(model.device), y.to(model.device)),
        "ART FrameSaliency+PGD": lambda v, y: torch.from_numpy(saliency.generate(to_numpy(v), y.numpy())),
        "ART OverTheAirFlickering": lambda v, y: torch.from_numpy(flicker.generate(
            to_numpy(v.permute(0, 1, 3, 4, 2)), y.numpy())).permute(0, 1, 4, 2, 3),
    }


def sava_systems(model):
    def adversarial(attack):
        def run(videos, labels):
            results = attack.run(videos, labels).results
            return torch.stack([replay(v, r) if r.attacked else v for v, r in zip(videos, results)])
        return run

    return {
        "sava bim": adversarial(make_attack("bim", model, epsilon=EPSILON, alpha=STEP, steps=STEPS)),
        "sava mi": adversarial(make_attack("mi", model, epsilon=EPSILON, alpha=STEP, steps=STEPS)),
        "sava deepsava": adversarial(make_attack("deepsava", model)),
        "sava flicker": adversarial(make_attack("flicker", model)),
    }


PAIRS = [("torchattacks PGD", "sava bim"), ("torchattacks MI-FGSM", "sava mi"),
         ("ART FrameSaliency+PGD", "sava deepsava"), ("ART OverTheAirFlickering", "sava flicker")]


def figures(model, clean, adversarial, labels) -> dict:
    """Fooling rate and the perturbation's size, measured the same way for every system."""
    from skimage.metrics import structural_similarity

    adversarial = adversarial.clamp(0, 1).float()
    fooled = model.predict(adversarial)[0].cpu() != labels
    change = (adversarial - clean).abs().flatten(2).amax(2) > 1e-6  # B x T: the frames a system changed
    ssims = [structural_similarity(adversarial[b, t].permute(1, 2, 0).numpy(), clean[b, t].permute(1, 2, 0).numpy(),
                                   channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False)
             for b, t in change.nonzero().tolist()]
    return {"fooling_rate": float(fooled.float().mean()), "frames_per_video": float(change.sum(1).float().mean()),
            "mean_ssim": float(np.mean(ssims)) if ssims else 1.0, "min_ssim": float(np.min(ssims)) if ssims else 1.0,
            "linf": float((adversarial - clean).abs().amax()),
            "l21": float(l21_norm(adversarial - clean).mean())}


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="c3d-camera")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timed runs of every system")
    parser.add_argument("--flicker-steps", type=int, default=100, help="ART flickering's iterations")
    parser.add_argument("--tiny", action="store_true", help="3 clips, 1 round, 5 flickering steps")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU runner's rows")
    parser.add_argument("--skip-missing", action="store_true",
                        help="without the peers installed, say so and write nothing (the GPU runner's check)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON rows to this file")
    args = parser.parse_args()
    if args.tiny:
        args.videos, args.rounds, args.flicker_steps = 3, 1, 5
    missing = [name for name in ("torchattacks", "art", "skimage") if importlib.util.find_spec(name) is None]
    if missing:
        message = (f"bench_peers: {', '.join(missing)} not installed: pip install -e '.[peers]' && "
                   "pip install --no-deps torchattacks==3.5.1")
        if args.skip_missing:
            print(message + " (skipped)")
            return
        raise SystemExit(message)
    torch.manual_seed(0)
    model = load_bundled(args.model, device=args.device)
    clips = bundled(model.info.extra["dataset"], "test")
    videos, labels = clips.float_videos(slice(0, args.videos)), clips.labels[:args.videos]
    right = model.predict(videos)[0].cpu() == labels  # attack what the model gets right, as sava does
    videos, labels = videos[right], labels[right]
    systems = peer_systems(model, tuple(videos.shape[1:]), args.flicker_steps) | sava_systems(model)
    seconds = {name: [] for name in systems}
    made = {}
    for _ in range(args.rounds):
        for peer, ours in PAIRS:
            for name in (peer, ours):
                synchronise(args.device)
                started = time.perf_counter()
                made[name] = systems[name](videos, labels).detach().cpu()
                synchronise(args.device)
                seconds[name].append((time.perf_counter() - started) / len(videos))
    env = environment(args.device) | {name: importlib.metadata.version(dist) for name, dist in (
        ("torchattacks", "torchattacks"), ("art", "adversarial-robustness-toolbox"), ("skimage", "scikit-image"))}
    rows = []
    for peer, ours in PAIRS:
        for name in (peer, ours):
            per_video = statistics.median(seconds[name])
            row = env | {"op": "peers", "model": model.name, "videos": len(videos), "system": name,
                         "seconds_per_video": per_video, "rounds": args.rounds} | figures(model, videos, made[name],
                                                                                          labels)
            if name == ours:
                row["peer"], row["peer_seconds_over_sava"] = peer, statistics.median(seconds[peer]) / per_video
            rows.append(row)
    append_rows(args.out, rows)
    print(f"{'system':<26} {'FR':>7} {'frames':>7} {'SSIM':>7} {'min SSIM':>8} {'L-inf':>7} {'l2,1':>7} "
          f"{'s/video':>8} {'peer/sava':>9}")
    for row in rows:
        ratio = f"{row['peer_seconds_over_sava']:.2f}" if "peer" in row else "-"
        print(f"{row['system']:<26} {row['fooling_rate']:>7.1%} {row['frames_per_video']:>7.1f} "
              f"{row['mean_ssim']:>7.3f} {row['min_ssim']:>8.3f} {row['linf']:>7.4f} {row['l21']:>7.4f} "
              f"{row['seconds_per_video']:>8.3f} {ratio:>9}")


if __name__ == "__main__":
    main()
