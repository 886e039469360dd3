"""``sava attack`` over a dataset: decoding in background workers, the
attack's continuous batching, outputs written as each video finishes, resume
from the manifest, and shards for torchrun.

1. The settings go to ``run.json`` (a rerun into the same folder must match
   them) and the manifests say which videos are done; this process takes the
   rest of its shard.
2. Clips are decoded ahead in worker processes (:mod:`.decode`); an unusable
   file becomes a ``skipped`` manifest line with its reason.
3. The attack streams results; each is written (perturbation file, optional
   lossless adversarial clip, then its manifest line) as it finishes.
4. After all shards are done (a barrier), the first process merges the
   manifests and writes ``metrics.json`` over every video of the run.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..data.sampling import NOT_RECORDED
from ..files import read_records, write_atomic
from ..metrics import RunSummary, VideoResult, summarise
from ..outputs import RunWriter
from ..report import write_report
from .decode import decoded
from .folder import claim, locked
from .manifest import (
    CORRUPT_SUFFIX,
    MANIFEST,
    check_settings,
    finished,
    manifest_name,
    manifests,
)
from .shard import Shard

# What must not change between a run and its resumption.
RESUME_KEYS = ("model", "data", "split", "clip_frames", "size", "fit", "frame_stride", "zoom", "frame_rate", "settings",
               "videos", "precision")
SESSIONS = "sessions.jsonl"


@dataclass
class DatasetRun:
    folder: Path
    meta: dict
    count: int  # the first ``count`` videos of the dataset
    relabel: list[int]  # dataset label -> model label
    num_classes: int
    targeted: bool = False
    target_class: int | None = None
    workers: int = 2
    save_videos: bool = False
    progress: bool = True
    title: str = "attack"
    shard: Shard = field(default_factory=Shard)
    log: object = print


def run_dataset(attack, dataset, run: DatasetRun) -> RunSummary | None:
    """Attack this process's share of the videos not yet done; the first process returns the run's summary."""
    shard = run.shard
    if shard.rank == 0:
        claim(run.folder)  # a folder sava did not make is refused before anything in it is read
    with locked(run.folder) if shard.rank == 0 else nullcontext():
        return _run_locked(attack, dataset, run)


def _run_locked(attack, dataset, run: DatasetRun) -> RunSummary | None:
    from tqdm import tqdm

    shard = run.shard
    if shard.rank == 0:
        resumed = check_settings(run.folder, run.meta, RESUME_KEYS, absent=NOT_RECORDED)
    shard.barrier()  # run.json exists before the other processes compare against it
    if shard.rank != 0:
        resumed = check_settings(run.folder, run.meta, RESUME_KEYS, absent=NOT_RECORDED)
    problems: list[str] = []
    done = finished(run.folder, problems)
    if shard.rank == 0:
        for problem in problems:
            run.log(f"warning: {problem}")
    todo = [i for i in shard.indices(run.count) if dataset.video_id(i) not in done]
    if resumed and shard.rank == 0:
        run.log(f"resuming {run.folder}: {len(done)} of {run.count} videos already done")
    writer = RunWriter(run.folder, run.meta, manifest_name(shard.rank, shard.world), preview=shard.rank == 0,
                       save_videos=run.save_videos)
    clips, positions, results = {}, {}, []
    started = time.perf_counter()
    bar = tqdm(total=len(todo), desc=run.title, unit="video", disable=not run.progress or shard.rank != 0,
               file=sys.stderr)

    bars = {}  # the frame-search bar, made when a selector first scores (bo, brute): no empty bar otherwise

    def on_scored(scored: int, total: int, videos: int) -> None:
        if "search" not in bars:
            bars["search"] = tqdm(desc="frame search", unit="candidate", position=1, leave=False, file=sys.stderr,
                                  disable=not run.progress or shard.rank != 0)
        search = bars["search"]
        if scored == 1:
            search.reset(total)
            search.set_description(f"frame search, {videos} videos")
        search.update(1)
        if scored == total:  # a batch's search done: shown even when it took less than tqdm's refresh interval
            search.refresh()

    selector = getattr(attack, "selector", None)
    if selector is not None:
        selector.progress = on_scored

    def items():
        for item in decoded(dataset, todo, run.workers):
            if item.clip is None:
                writer.write_record({"video_id": item.video_id, "index": item.index, "skipped": item.error})
                bar.update(1)
                continue
            clips[item.video_id], positions[item.video_id] = item.clip, item.index
            label = run.relabel[item.label]
            target = None
            if run.targeted:
                target = run.target_class if run.target_class is not None else (label + 1) % run.num_classes
            yield item.video_id, item.clip, label, target

    try:
        for result in attack.stream(items()):
            results.append(result)
            writer.add(result, clips.pop(result.video_id, None), {"index": positions.pop(result.video_id)})
            bar.set_postfix_str(f"FR {sum(r.success for r in results)}/{sum(r.attacked for r in results)}")
            bar.update(1)
    finally:
        for search in bars.values():
            search.close()
        bar.close()
        writer.close()
        _log_session(run.folder, shard, time.perf_counter() - started, len(results))
    shard.barrier()
    if shard.rank != 0:
        return None
    return merge(run.folder, run.meta, run.count)


def _log_session(folder: Path, shard: Shard, seconds: float, videos: int) -> None:
    with open(folder / SESSIONS, "a", encoding="utf-8") as handle:  # short appends are atomic
        handle.write(json.dumps({"rank": shard.rank, "world": shard.world, "seconds": seconds,
                                 "videos": videos}) + "\n")


def merge(folder: Path, meta: dict | None = None, count: int | None = None, log=None) -> RunSummary:
    """Gather the shards' manifests into ``videos.jsonl`` (dataset order, one line per video)
    and write ``metrics.json`` over every video of the run (``sava merge``). Damaged manifest lines are
    passed to ``log`` when given, and kept in ``videos.jsonl.corrupt``."""
    folder = Path(folder)
    meta = meta or json.loads((folder / "run.json").read_text())
    records, problems, corrupt = {}, [], []
    for path in manifests(folder):
        for record in read_records(path, problems, corrupt):
            records[record["video_id"]] = record
    for problem in problems if log is not None else []:
        log(problem)
    ordered = sorted(records.values(), key=lambda r: (r.get("index", 0), r["video_id"]))
    if corrupt:  # rewriting the manifest drops them: keep them beside it for whoever wants to look
        with open(folder / (MANIFEST + CORRUPT_SUFFIX), "ab") as handle:
            handle.write(b"".join(line + b"\n" for line in corrupt))
    write_atomic(folder / MANIFEST, "".join(json.dumps(r) + "\n" for r in ordered))
    for path in manifests(folder):
        if path.name != MANIFEST:
            path.unlink()
    results = [VideoResult.from_record(r) for r in ordered if "skipped" not in r]
    skipped = [{"index": r.get("index"), "video_id": r["video_id"], "reason": r["skipped"]}
               for r in ordered if "skipped" in r]
    summary = summarise(results, _wall_seconds(folder))
    expected = count if count is not None else meta.get("videos")
    payload = dict(meta) | {"summary": summary.as_dict(), "skipped_files": skipped,
                            "completed": expected is None or len(ordered) >= expected}
    write_atomic(folder / "metrics.json", json.dumps(payload, indent=2))
    write_report(folder)
    return summary


def _wall_seconds(folder: Path) -> float:
    """Time the run took: per process the sum over its sessions; the slowest process counts."""
    per_rank: dict[tuple[int, int], float] = {}
    path = folder / SESSIONS
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                session = json.loads(line)
                key = (session["world"], session["rank"])
                per_rank[key] = per_rank.get(key, 0.0) + session["seconds"]
    by_world: dict[int, float] = {}
    for (world, _), seconds in per_rank.items():
        by_world[world] = max(by_world.get(world, 0.0), seconds)
    return sum(by_world.values())
