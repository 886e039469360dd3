"""``sava attack``'s options checked as a whole: numbers no method can use are refused, and options the
chosen method ignores are said once."""

from __future__ import annotations

from ..errors import SavaError

# The method-specific options each sparse method passes on, as {option's attribute: the attack's keyword}:
# build_attack passes them and ignored_options names the rest, from this one table.
METHOD_OPTIONS = {
    "deepsava": {"lam": "lam", "lam_end": "lam_end", "flow_lr": "flow_lr", "noise_lr": "noise_lr",
                 "adv_loss": "adv_loss"},
    "sparse": {"lam": "lam", "noise_lr": "lr", "adv_loss": "adv_loss"},
    "flicker": {"lam": "lam", "noise_lr": "lr", "adv_loss": "adv_loss"},
    "keyframe": {"boundary": "boundary", "noise_lr": "lr"},
}
TABLE_OPTIONS = sorted({option for table in METHOD_OPTIONS.values() for option in table} - {"boundary"})

# Integer options and the least value any method can use.
AT_LEAST = {"iters": 0, "bo_evaluations": 1, "score_steps": 1, "tt_shift": 1, "target_class": 0, "frames": 1}


def refuse_senseless_numbers(args) -> None:
    """A negative count or shift means nothing to any method: refused whichever method is asked for."""
    for name, least in AT_LEAST.items():
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise SavaError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")


def given_options(argv: list[str]) -> set[str]:
    """The long options the user typed (``--name`` or ``--name=value``), as argparse's attribute names."""
    return {item[2:].partition("=")[0].replace("-", "_") for item in argv if item.startswith("--")}


def ignored_options(args) -> list[str]:
    """A line for each option the user gave that the chosen method (or selector) does not use."""
    given = given_options(getattr(args, "argv", []))
    method, selector = args.method, args.selector or ""
    search = selector.partition(":")[0] in ("bo", "brute")
    uses = {
        "bo_evaluations": selector.startswith("bo"),
        "score_steps": search,
        "tt_shift": args.tt, "tt_weights": args.tt, "tt_strategy": args.tt,
    } | {option: option in METHOD_OPTIONS.get(method, {}) for option in TABLE_OPTIONS}
    why = {"bo_evaluations": "it sets the bo selector's search", "score_steps": "it sets the bo and brute search",
           "tt_shift": "it needs --tt", "tt_weights": "it needs --tt", "tt_strategy": "it needs --tt"}
    return [f"note: --{name.replace('_', '-')} is ignored by {method}"
            f"{' with selector ' + selector if selector and name in ('bo_evaluations', 'score_steps') else ''}"
            f" ({why.get(name, 'not one of its settings')})"
            for name, used in uses.items() if name in given and not used]
