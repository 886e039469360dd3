"""``sava models`` and ``sava data``: what ships and what the zoo presets are."""

from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("models", help="list the bundled models with their test accuracy, and the zoo presets")
    sub.add_parser("data", help="list the bundled datasets")


def cmd_models(args) -> int:
    from ..models.bundled import describe
    from ..models.zoo import describe_presets

    print(f"{'model':<18} {'arch':<10} {'dataset':<8} {'classes':>7} {'clip (T,C,H,W)':<16} {'test acc':>8}")
    for row in describe():
        print(f"{row['name']:<18} {row['arch']:<10} {row['dataset']:<8} {row['classes']:>7} "
              f"{str(tuple(row['clip_shape'])):<16} {row['test_accuracy']:>8.2%}")
    print("\nzoo presets (--model NAME --weights STATE_DICT or --weights cached; no download; a 400-way head "
          "gets Kinetics-400's class names; video files are resized as the weights' transforms resize them and "
          "the clip kept from the centre, and taken at the frame rate the weights were evaluated at: --resize, --fit, "
          "--frame-rate):")
    print(f"{'preset':<24} {'clip (T,H,W)':<16} {'mean':<26} {'resize':<16} {'fps':<6} note")
    for row in describe_presets():
        clip = str(row["clip"]) if row["clip"] else "from its files"
        mean = ",".join(f"{m:g}" for m in row["mean"]) if row["mean"] else "from its files"
        resize = row.get("resize") or ()
        resize = (" x ".join(map(str, resize)) if len(resize) == 2 else f"short side {resize[0]}") if resize \
            else "from its files"
        rate = f"{row['rate']:g}" if row.get("rate") else "-"
        print(f"{row['name']:<24} {clip:<16} {mean:<26} {resize:<16} {rate:<6} {row['note']}")
    print("\nalso: package.module:factory (with --weights), a TorchScript file, and the model.safetensors that "
          "sava train writes (it names the model it came from)")
    return 0


def cmd_data(args) -> int:
    from ..data import BUNDLED

    print(f"{'dataset':<8} {'classes':>7} {'train':>6} {'test':>5}  {'clip (T,C,H,W)':<16} description")
    for name, (module, description) in sorted(BUNDLED.items()):
        shape = (module.FRAMES, 3, module.SIZE, module.SIZE)
        print(f"{name:<8} {len(module.CLASSES):>7} {module.CLIPS['train']:>6} {module.CLIPS['test']:>5}  "
              f"{str(shape):<16} {description}")
        print(f"{'':<8} classes: {', '.join(module.CLASSES)}")
    return 0
