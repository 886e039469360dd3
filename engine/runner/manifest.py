"""The manifest of a run folder: one JSON line per finished video.

A line is appended (and flushed) only after the video's perturbation file has
been written atomically, so a line always points at a complete file. A crash
can leave a torn last line; reading repairs it by cutting the file back to
its last complete line. A rerun skips every video a manifest lists, so a
result is neither lost nor written twice.

Processes of a sharded run write their own manifest (``videos.rank-R.jsonl``);
merging gathers them into ``videos.jsonl``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..files import read_records, write_atomic

MANIFEST = "videos.jsonl"
SETTINGS = "run.json"


def manifest_name(rank: int, world: int) -> str:
    return MANIFEST if world == 1 else f"videos.rank-{rank}.jsonl"


_MANIFEST_NAME = re.compile(r"videos(\.rank-\d+)?\.jsonl")
CORRUPT_SUFFIX = ".corrupt"  # where unreadable manifest lines are kept when a manifest is rewritten


def manifests(folder: Path) -> list[Path]:
    """The manifests sava writes into a run folder (``videos.jsonl``, ``videos.rank-R.jsonl``), nothing else."""
    return sorted(p for p in folder.glob("videos*.jsonl") if _MANIFEST_NAME.fullmatch(p.name) and p.is_file())


def finished(folder: Path, problems: list[str] | None = None) -> dict[str, dict]:
    """Every video any manifest of the folder lists, by id."""
    done: dict[str, dict] = {}
    for path in manifests(folder):
        for record in read_records(path, problems):
            done[record["video_id"]] = record
    return done


def check_settings(folder: Path, meta: dict, keys: tuple[str, ...], name: str = SETTINGS,
                   absent: dict | None = None) -> bool:
    """Record the run's settings in ``folder/name``, or check them against those of the run being
    resumed; ``absent`` gives the value a key that either side lacks stands for (a setting added after the
    folder was begun). Returns True when the folder already held a run (a resume)."""
    path = folder / name
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(meta, indent=2))
        return False
    before = json.loads(path.read_text())
    changed = []
    absent = absent or {}
    for key in keys:
        then, now = before.get(key, absent.get(key)), meta.get(key, absent.get(key))
        if isinstance(then, dict) and isinstance(now, dict):  # name the setting inside, not the whole dict
            changed += [(f"{key}.{k}", then.get(k), now.get(k)) for k in {**then, **now} if then.get(k) != now.get(k)]
        elif then != now:
            changed.append((key, then, now))
    if changed:
        from ..errors import ConfigError

        details = "; ".join(f"{key}: {then!r} then, {now!r} now" for key, then, now in changed)
        raise ConfigError(f"{folder} holds a run with other settings ({details}); resume with the same "
                          "command or choose another --out")
    return True
