"""Which folders are sava's, and who is writing into one.

A run folder is sava's only when sava made it: the first thing written into
it is a marker (``.sava-run``). Any other non-empty folder is refused before
anything in it is read, moved or deleted. Run folders from sava versions
before the marker (a ``run.json`` that sava wrote) are recognised and marked.

While a run writes into a folder it holds a lock (``.sava-lock``: the owner's
pid, host and start time), so that a second process cannot attack the same
videos into it. A lock left by a process that has died on this host is taken
over; a lock from another host is refused with what is known of its owner.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from ..errors import ConfigError

MARKER = ".sava-run"
LOCK = ".sava-lock"


def _legacy_run(folder: Path) -> bool:
    """A run folder written before the marker existed: its ``run.json`` is sava's."""
    try:
        settings = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(settings, dict) and "sava_version" in settings and "settings" in settings


def is_run_folder(folder: str | Path) -> bool:
    """Whether sava made ``folder`` (its marker, or a run folder from before the marker)."""
    folder = Path(folder)
    return folder.is_dir() and ((folder / MARKER).is_file() or _legacy_run(folder))


def claim(folder: str | Path, kind: str = "run") -> bool:
    """Make ``folder`` a sava folder, or check that it is one. Returns True when it already was (a resume).

    Raises ``ConfigError`` for a path that is a file, a folder that cannot be written, or a non-empty folder
    that sava did not make."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file, not a folder; choose a folder for the {kind}")
    if folder.is_dir():
        if (folder / MARKER).is_file():
            return True
        if _legacy_run(folder):
            _write_marker(folder, kind)
            return True
        if any(folder.iterdir()):
            raise ConfigError(f"{folder} is not empty and was not made by sava (no {MARKER}); sava does not read, "
                              f"move or delete files it did not write: choose another --out (a new or empty folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_marker(folder, kind)
    except OSError as exc:
        raise ConfigError(f"cannot write the {kind} folder {folder}: {exc.strerror or exc}") from exc
    return False


def _write_marker(folder: Path, kind: str) -> None:
    (folder / MARKER).write_text(json.dumps({"made_by": "sava", "kind": kind, "sava_version": __version__}) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _owner(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # torn or unreadable: treated as stale below only if old enough
    return owner if isinstance(owner, dict) else None


@contextmanager
def locked(folder: str | Path):
    """Hold ``folder``'s lock for the duration; refuse when a live process holds it."""
    path = Path(folder) / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _take_over_if_stale(path)
            continue
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(me) + "\n")
        break
    else:
        raise ConfigError(f"{folder}: could not take the run folder's lock ({path})")
    try:
        yield
    finally:
        if _owner(path) == me:
            path.unlink(missing_ok=True)


def _take_over_if_stale(path: Path) -> None:
    """Remove a lock whose owner is gone, or raise naming the live owner."""
    owner = _owner(path)
    if owner is None:  # unreadable: a lock being written this instant, or debris of a crash
        try:
            if time.time() - path.stat().st_mtime < 10:
                raise ConfigError(f"{path.parent} is being claimed by another sava process right now (its lock "
                                  f"{path} is new); wait for it, or give this run another --out")
        except FileNotFoundError:
            return
    elif owner.get("host") != socket.gethostname():
        raise ConfigError(f"{path.parent} is in use by sava process {owner.get('pid')} on host {owner.get('host')!r} "
                          f"(since {time.ctime(owner.get('started', 0))}); if that process is gone, delete {path}")
    elif _alive(int(owner.get("pid", -1))):
        raise ConfigError(f"{path.parent} is in use by another sava process (pid {owner['pid']} on this host); "
                          "wait for it to finish, or give this run another --out")
    # Stale. Move it aside and look at what was moved: if another process replaced the stale lock with its own
    # in the meantime, put that one back instead of removing it.
    aside = path.with_name(f"{LOCK}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if _owner(aside) != owner and not path.exists():
        os.replace(aside, path)
    aside.unlink(missing_ok=True)
