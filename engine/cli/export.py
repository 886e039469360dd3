"""``sava export``: a target model to ONNX, checked against torch."""

from __future__ import annotations

from pathlib import Path

from ..errors import SavaError
from .options import HelpFormatter, finite, load_model_from_args, model_arguments, refuse_user_model_options


def add_parser(sub) -> None:
    export = sub.add_parser("export", help="export a target model to ONNX, checked against torch",
                            formatter_class=HelpFormatter)
    model_arguments(export, all_models=True, files=False)
    export.add_argument("--out", type=Path, default=Path("exports"), help="folder for MODEL.onnx")
    export.add_argument("--tolerance", type=finite, default=1e-4,
                        help="largest |ONNX Runtime - torch| logit difference accepted")
    export.add_argument("--fixed-time", action="store_true", help="do not try a dynamic time axis")


def cmd_export(args) -> int:
    from ..export import export_onnx
    from ..files import file_stem
    from ..models.adapter import clip_for_files
    from ..models.bundled import bundled_names, load_bundled
    from ..models.loading import BASE_MODEL

    bundled = bundled_names()
    refuse_user_model_options(args, bundled)
    if args.model == "all" or args.model in bundled:
        models = [(name, load_bundled(name), None) for name in (bundled if args.model == "all" else [args.model])]
    else:  # any model sava attack takes; its clip shape comes from the options
        if (args.clip_frames is not None and args.clip_frames < 1) or (args.size and min(args.size) < 1):
            raise SavaError("--clip-frames and --size must be positive")
        model = load_model_from_args(args, "cpu")
        frames, (height, width) = clip_for_files(model.info, args.clip_frames, args.size)
        given = args.clip_frames is not None or args.size is not None
        channels = model.info.clip_shape[1] if model.info.clip_shape else 3
        shape = (frames, channels, height, width) if given or not model.info.clip_shape else model.info.clip_shape
        # a sava train file is named by what it holds ("pkg.mod:build+pgd"), not by its path
        trained = BASE_MODEL in model.info.extra and Path(args.model).is_file()
        models = [(file_stem(model.name if trained else args.model), model, shape)]
    for name, model, shape in models:
        report = export_onnx(model, args.out / f"{name}.onnx", tolerance=args.tolerance,
                             dynamic_time=not args.fixed_time, clip_shape=shape)
        time_axis = "dynamic" if report.dynamic_time else "fixed"
        if report.fixed_time_reason:
            time_axis += f": a dynamic time axis failed ({report.fixed_time_reason})"
        if report.dynamo_failure:
            print(f"{name}: the dynamo exporter failed ({report.dynamo_failure}); exported with torch's "
                  "TorchScript-based exporter (recorded in the file's metadata)")
        print(f"{name}: {report.path} (batch dynamic, time {time_axis}); ONNX checker passed; "
              f"largest |ORT - torch| = {report.max_abs_difference:.2e} over shapes {report.checked_shapes}")
    return 0
