"""What Bayesian optimisation saves over brute force, per bundled model, in one run on this machine.

    python benchmarks/bo_cost.py --out benchmarks/results/bo_cost.jsonl      # CPU, 64 clips per model

For each bundled model (16 frames, one perturbed frame, cap 100) it attacks the same clips with
``--selector brute`` and ``--selector bo`` and reports the time spent searching for the frame (inside the
selector), the whole run's time, the candidates scored, the fooling rates, and the share of attacked videos
on which BO reaches brute force's outcome (fooled wherever brute force fools). Rows carry device, commit
and versions.

The clips are test clips 160 to 223 by default: BO's settings (its first candidate, the surrogate's temporal
blur) were chosen on clips 0-31 and 96-159, so the figures come from clips they were not tuned on. botorch is
imported before anything is timed: a process pays for that once, not per batch.

Timings on a shared 2-core machine vary by up to a quarter from run to run (the same BO search took 13.8 s
and 17.4 s in one process), so each selector runs ``--repeats`` times, in alternating order (brute force first, then BO
first, ...), and the rows give the median times with every sample; the outcomes, which do not depend on
timing, must agree across repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from sava.attacks import DeepSAVA
from sava.data import bundled
from sava.models.bundled import bundled_names, load_bundled
from sava.provenance import environment
from sava.selection import make_selector


def one(model, videos, labels, selector, iters: int) -> dict:
    attack = DeepSAVA(model, frames=1, selector=selector, max_iters=iters, batch_size=len(videos))
    started = time.perf_counter()
    run = attack.run(videos, labels)
    seconds = time.perf_counter() - started
    return {"selector": repr(selector), "search_seconds": attack.selection_seconds, "total_seconds": seconds,
            "candidates_scored": selector.evaluations, "fooling_rate": run.summary.fooling_rate,
            "attacked": run.summary.attacked, "_results": run.results}


def repeated(model, videos, labels, selectors: dict, iters: int, repeats: int) -> dict:
    """Each selector of ``selectors`` (name -> a function making a fresh one, so that every repeat starts from
    the same seed) run ``repeats`` times in alternating order: its median times, every sample, and the
    results (the same in every repeat)."""
    samples, outcome = {name: [] for name in selectors}, {}
    for repeat in range(repeats):
        for name in (list(selectors) if repeat % 2 == 0 else list(selectors)[::-1]):
            run = one(model, videos, labels, selectors[name](), iters)
            results = run.pop("_results")
            decided = [(r.attacked, r.success, tuple(r.frames)) for r in results]
            if outcome.setdefault(name, (decided, results))[0] != decided:
                raise RuntimeError(f"{name}'s outcomes changed between repeats: the comparison is not reproducible")
            samples[name].append(run)
    summary = {}
    for name, runs in samples.items():
        summary[name] = runs[0] | {key: statistics.median(run[key] for run in runs)
                                   for key in ("search_seconds", "total_seconds")}
        summary[name]["samples"] = [{key: run[key] for key in ("search_seconds", "total_seconds")} for run in runs]
        summary[name]["_results"] = outcome[name][1]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(bundled_names()))
    parser.add_argument("--start", type=int, default=160, help="the first test clip")
    parser.add_argument("--num-videos", type=int, default=64)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--bo", default="bo", help="the BO selector spec (bo, bo:random, ...)")
    parser.add_argument("--bo-evaluations", type=int, default=None, help="default: the selector's")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each selector; the rows give medians")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    env = environment("cpu")
    import botorch.models  # noqa: F401 -- a one-off cost, outside the timings
    budget = {} if args.bo_evaluations is None else {"evaluations": args.bo_evaluations}
    rows = []
    for name in args.models.split(","):
        model = load_bundled(name, device="cpu")
        clips = bundled(model.info.extra["dataset"], "test")
        chosen = slice(args.start, args.start + args.num_videos)
        videos, labels = clips.float_videos(chosen), clips.labels[chosen]
        timed = repeated(model, videos, labels, {"brute": lambda: make_selector("brute"),
                                                 "bo": lambda: make_selector(args.bo, **budget)},
                         args.iters, args.repeats)
        brute, bo = timed["brute"], timed["bo"]
        pairs = [(b, f) for b, f in zip(bo.pop("_results"), brute.pop("_results")) if f.attacked]
        row = dict(env) | {"model": name, "videos": len(videos), "first_clip": args.start, "frames": 1,
                           "iters": args.iters, "repeats": args.repeats,
                           "brute": brute, "bo": bo,
                           "search_time_ratio": bo["search_seconds"] / brute["search_seconds"],
                           "total_time_ratio": bo["total_seconds"] / brute["total_seconds"],
                           "reaches_brute_force": sum(b.success or not f.success for b, f in pairs) / len(pairs)
                           if pairs else None}
        rows.append(row)
        print(f"{name:<16} search {bo['search_seconds']:6.1f} s vs {brute['search_seconds']:6.1f} s "
              f"({row['search_time_ratio']:.2f}x), whole run {row['total_time_ratio']:.2f}x, FR "
              f"{bo['fooling_rate']:.0%} vs {brute['fooling_rate']:.0%}, reaches brute force's outcome on "
              f"{row['reaches_brute_force']:.0%}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
