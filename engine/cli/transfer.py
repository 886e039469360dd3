"""``sava transfer``: the fooling-rate matrix of adversarial videos across models and runtimes."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path

from ..errors import SavaError
from .options import HelpFormatter, SettingsOnly, finite, input_arguments


def add_parser(sub) -> None:
    transfer = sub.add_parser("transfer", help="fooling-rate matrix of adversarial videos across models and "
                                               "runtimes (DeepSAVA Table 12)",
                              formatter_class=HelpFormatter)
    transfer.add_argument("--dataset", default="camera", help="bundled set whose bundled models are sources and "
                                                              "targets by default")
    transfer.add_argument("--sources", default=None, help="comma-separated white-box models (default: the "
                                                          "dataset's bundled models)")
    transfer.add_argument("--targets", default=None,
                          help="comma-separated models (anything --model takes, SPEC@WEIGHTS for a weights file, "
                               "e.g. torchvision:r3d_18@r3d.pth) or .onnx files, which run on the ONNX runtimes "
                               "only; or a .json file describing each target on its own (model, weights, layout, "
                               "mean, std, classes; README shows one) (default: the dataset's bundled models)")
    transfer.add_argument("--methods", default="deepsava,sparse", help="attacks run on each source")
    transfer.add_argument("--frames", "-k", type=int, default=7, help="perturbed frames (the paper's seven)")
    transfer.add_argument("--runs", nargs="*", type=Path, default=[],
                          help="sava attack run folders to use as sources instead of running attacks")
    transfer.add_argument("--runtime", default="torch,onnxruntime",
                          help="comma-separated runtimes for the targets: torch, onnxruntime, tensorrt")
    transfer.add_argument("--provider", default="cpu", choices=["cpu", "cuda", "tensorrt"],
                          help="ONNX Runtime execution provider")
    transfer.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="TensorRT precision")
    transfer.add_argument("--num-videos", type=int, default=32)
    transfer.add_argument("--batch-size", type=int, default=None,
                          help="clips a target classifies at once (default: 64 for a torch model, 32 for an ONNX "
                               "or TensorRT one, or what its file fixes); 1 for a model that takes one video at "
                               "a time")
    transfer.add_argument("--iters", type=int, default=100)
    transfer.add_argument("--margin", type=finite, default=0.0,
                          help="sparse methods: stop a video only once its success holds by this many logits")
    transfer.add_argument("--onnx-dir", type=Path, default=Path("exports"),
                          help="where bundled models are exported for ONNX runtimes (reused when present)")
    transfer.add_argument("--out", type=Path, default=None, help="default: runs/transfer-<time>")
    transfer.add_argument("--seed", type=int, default=0)
    input_arguments(transfer.add_argument_group(
        "user targets", "how every target that is neither bundled nor an .onnx file takes its clips (an .onnx file "
                        "made by sava export carries its own; targets described differently: a .json --targets "
                        "file, whose items' own settings win over these)"),
        whose="the user targets")


def _runtimes_for(spec: str, runtimes: list[str]) -> list[str]:
    """The asked runtimes a target runs on: an ``.onnx`` file on the ONNX ones only, any other model on all."""
    if not spec.endswith(".onnx"):
        return runtimes
    onnx_runtimes = [r for r in runtimes if r != "torch"]
    if not onnx_runtimes:
        raise SavaError(f"target {spec} is an ONNX file and runs on onnxruntime or tensorrt only; --runtime "
                        f"{','.join(runtimes)} names neither")
    return onnx_runtimes


def cmd_transfer(args) -> int:
    from ..attacks import make_attack
    from ..data import bundled
    from ..export import RUNTIMES, load_runtime_model
    from ..export.onnx_foreign import file_is_sava_export
    from ..models.bundled import bundled_names, load_bundled
    from ..provenance import environment
    from ..transfer import check_targets_take, disagreements, evaluate, from_run_folder, generate, write
    from .targets import Target, parse_targets

    if args.batch_size is not None and args.batch_size < 1:
        raise SavaError(f"--batch-size must be at least 1, got {args.batch_size}")
    runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise SavaError(f"unknown runtime(s) {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    dataset_models = [n for n in bundled_names() if n.endswith(f"-{args.dataset}")]
    split = lambda text: [v.strip() for v in text.split(",") if v.strip()]  # noqa: E731
    source_names = split(args.sources) if args.sources else ([] if args.runs else dataset_models)
    target_list = parse_targets(args.targets) if args.targets else [Target(name) for name in dataset_models]
    if not target_list:
        raise SavaError(f"no bundled models for dataset {args.dataset!r}; name --targets")
    for name in source_names:
        if name not in bundled_names():
            raise SavaError(f"sources must be bundled white-box models; {name!r} is not one")
    methods = split(args.methods)
    attacks = [(name, make_attack(name, SettingsOnly(), **_transfer_settings(name, args))) for name in methods]
    described = {name: getattr(args, name) for name in ("layout", "mean", "std") if getattr(args, name) is not None}
    def carries_its_own(spec: str) -> bool:  # no description applies: a bundled model or a sava export
        if spec.endswith(".onnx"):  # a missing file is named when it is opened
            return not Path(spec).is_file() or file_is_sava_export(spec)
        return spec in bundled_names()

    if described and all(carries_its_own(target.model) for target in target_list):
        raise SavaError(f"{', '.join('--' + name for name in described)} "
                        f"{'describes' if len(described) == 1 else 'describe'} user targets; every target here is "
                        "bundled or a sava export, which carry their own (drop them)")
    for target in target_list:
        if carries_its_own(target.model) and target.description():
            raise SavaError(f"target {target.model} carries its own {', '.join(target.description())} (a bundled "
                            "model or a sava export); drop them from its entry")
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    sources = [from_run_folder(folder) for folder in args.runs]
    clips = bundled(args.dataset, "test") if source_names else None
    # A user target is exported for the ONNX runtimes at the clips it will see, when it names no clip itself.
    clip_shape = tuple(sources[0].videos.shape[1:]) if sources else (tuple(clips.clip_shape) if clips else None)
    targets = {}  # every runtime is opened (and exports made) before any attack runs
    loaded = {}  # a user model is loaded once for all its runtimes
    for target in target_list:
        for runtime in _runtimes_for(target.model, runtimes):
            targets[f"{target.label} [{runtime}]"] = load_runtime_model(
                target.model, runtime, provider=args.provider, precision=args.precision, onnx_dir=args.onnx_dir,
                weights=target.weights, clip_shape=clip_shape, loaded=loaded,
                **({} if carries_its_own(target.model) else target.description(described)))
    if args.batch_size is not None:
        for target in targets.values():
            target.max_batch = min(target.max_batch, args.batch_size)
    check_targets_take(targets, [s.videos.shape[1:] for s in sources] + ([clips.clip_shape] if clips else []))
    if source_names:
        count = min(args.num_videos, len(clips))
        videos, labels = clips.float_videos(slice(0, count)), clips.labels[:count]
        for name in source_names:
            model = load_bundled(name)
            for method, _ in attacks:
                attack = make_attack(method, model, **_transfer_settings(method, args))
                log(f"generating {method} on {name} ...")
                sources.append(generate(model, attack, videos, labels, method))
    rows = evaluate(sources, targets, log=log)
    out = args.out or Path("runs") / f"transfer-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    meta = {"command": "sava " + shlex.join(args.argv), "environment": environment(), "runtimes": runtimes,
            "frames": args.frames, "iters": args.iters, "margin": args.margin,
            "title": f"transfer fooling rate, {args.dataset}, {args.frames} frames"
                     + (f", margin {args.margin:g}" if args.margin else "")}
    if len(runtimes) > 1:
        meta["disagreements"] = {f"{a} vs {b}": disagreements(rows, a, b)
                                 for i, a in enumerate(runtimes) for b in runtimes[i + 1:]}
    write(out, rows, meta)
    _print_transfer(rows, meta, out)
    return 0


def _transfer_settings(method: str, args) -> dict:
    from ..attacks import LINF_METHODS

    if method in LINF_METHODS or method == "msanet":
        return {"seed": args.seed}
    settings = {"max_iters": args.iters, "seed": args.seed}
    if method == "keyframe":
        return settings
    if method == "sparse":  # Table 12's Sparse, unbounded as in the paper (its default holds SSIM 0.9)
        settings["min_ssim"] = None
    return settings | {"frames": args.frames} | ({"margin": args.margin} if args.margin else {})


def _print_transfer(rows, meta, out) -> None:
    from ..transfer import matrix

    sources, targets, cell = matrix(rows)
    width = max(len(s) for s in sources) + 2
    print(" " * width + " ".join(f"{t:>24}" for t in targets))
    for source in sources:
        print(f"{source:<{width}}" + " ".join(f"{'-' if cell[source, t] is None else f'{cell[source, t]:.1%}':>24}"
                                              for t in targets))
    for pair, count in meta.get("disagreements", {}).items():
        print(f"decisions that differ, {pair}: {count}")
    print(f"written: {out}/transfer.json, transfer.csv, transfer.png")
