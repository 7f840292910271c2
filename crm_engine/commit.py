"""Committing outputs: staged writes made visible by one rename, one run at a time.

A run output directory looks like this::

    out/
      runs/<run_id>/          every committed run, complete (the last ``keep`` are kept)
      current -> runs/<id>    the committed run: replacing this link is the commit
      scores.parquet -> current/scores.parquet   (and the other output files: stable names;
                              scores/ and profiles/ of parts with output.single_file off)
      mlflow.db, mlartifacts/ the embedded MLflow store, never inside a swapped directory
      .crm-engine.lock        who is running now (pid, start time)

A run writes into ``runs/.<run_id>.tmp``, renames it to ``runs/<run_id>`` when complete, then
atomically replaces ``current``. A kill at any moment leaves ``current`` on the last good run;
the next run removes what a dead run left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from crm_engine.io import DataError

__all__ = [
    "CURRENT",
    "FAULT_ENV",
    "LOCK_FILE",
    "RUNS_DIR",
    "SCRATCH_PREFIX",
    "STALE_SUFFIX",
    "LockedError",
    "atomic_directory",
    "committed_run",
    "current_run",
    "fault_point",
    "output_lock",
    "scratch_directory",
]

RUNS_DIR = "runs"
CURRENT = "current"
LOCK_FILE = ".crm-engine.lock"
STALE_SUFFIX = ".stale"
"""A staged file named ``<name>.stale`` removes ``<name>`` from the target on a merge commit."""

FAULT_ENV = "CRM_ENGINE_FAULT"
"""Test-only: ``<point>`` (or ``<point>@SIGTERM``) at which the process signals itself: SIGKILL,
as ``kill -9`` would, unless another signal is named."""


def fault_point(name: str) -> None:
    """Signal this process here when ``$CRM_ENGINE_FAULT`` names this point (tests)."""
    point, _, sig = os.environ.get(FAULT_ENV, "").partition("@")
    if point == name:
        os.kill(os.getpid(), signal.Signals[sig] if sig else signal.SIGKILL)


class LockedError(DataError):
    """Another run holds the output directory."""


# --- scratch for runs that write nowhere --------------------------------------------------------

SCRATCH_PREFIX = "crm-work-"


@contextlib.contextmanager
def scratch_directory() -> Iterator[str]:
    """A temporary directory for a run with no output directory (``churn train``: its models
    go to MLflow), removed when the run ends.

    Its name carries the process id and start time, and the ones a killed process left in
    ``$TMPDIR`` are removed first, so kills do not pile them up.
    """
    import psutil

    root = Path(tempfile.gettempdir())
    for path in root.glob(f"{SCRATCH_PREFIX}*-*-*"):
        try:
            pid, started = path.name[len(SCRATCH_PREFIX) :].split("-")[:2]
            if path.stat().st_uid != os.getuid() or _holder_alive(
                {"pid": pid, "create_time": float(started)}
            ):
                continue
        except (ValueError, OSError):
            continue
        shutil.rmtree(path, ignore_errors=True)
    me = psutil.Process(os.getpid())
    with tempfile.TemporaryDirectory(
        prefix=f"{SCRATCH_PREFIX}{me.pid}-{me.create_time():.3f}-"
    ) as tmp:
        yield tmp


# --- one run at a time -----------------------------------------------------------------------


def _holder_alive(holder: dict[str, object]) -> bool:
    import psutil

    try:
        pid = int(holder["pid"])  # type: ignore[arg-type]
        proc = psutil.Process(pid)
        started = float(holder.get("create_time", 0.0))  # type: ignore[arg-type]
        # the same pid reused by another process is not the holder
        return abs(proc.create_time() - started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (KeyError, ValueError, TypeError, psutil.Error):
        return False


@contextlib.contextmanager
def output_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.crm-engine.lock`` for a run; a second run, while it lives, fails by name.

    A lock whose holder is dead (killed, crashed) is taken over.

    Raises
    ------
    LockedError
        Naming the holder's pid and start time.
    """
    import psutil

    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    me = psutil.Process(os.getpid())
    mine = {
        "pid": me.pid,
        "create_time": me.create_time(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            if _holder_alive(holder):
                raise LockedError(
                    f"output directory {directory} is in use by another run (pid "
                    f"{holder.get('pid')}, started {holder.get('started')}); wait for it or "
                    f"remove {path} if that process is gone"
                ) from None
            path.unlink(missing_ok=True)  # a dead run's lock: take it over
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(mine, fh)
        break
    else:
        raise LockedError(f"could not take the lock {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        if created:  # a run that wrote nothing leaves no directory behind
            with contextlib.suppress(OSError):
                directory.rmdir()


# --- committing a run --------------------------------------------------------------------------


def current_run(out_dir: Path) -> Path | None:
    """The committed run's directory (``out/current``), or a legacy flat output, or None."""
    out_dir = Path(out_dir)
    if (out_dir / CURRENT / "manifest.json").is_file():
        return out_dir / CURRENT
    if (out_dir / "manifest.json").is_file():
        return out_dir
    return None


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` by one rename (a real directory is moved aside)."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.lnk")
    os.symlink(target, tmp)
    if link.is_dir() and not link.is_symlink():  # a copied or pre-layout output directory
        aside = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(link, aside)
        os.replace(tmp, link)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(tmp, link)


def _remove_leftovers(out_dir: Path) -> None:
    """What dead runs left: staging directories, half-made links, moved-aside directories."""
    runs = out_dir / RUNS_DIR
    for item in runs.iterdir() if runs.is_dir() else ():
        if item.name.startswith(".") and item.name.endswith(".tmp"):
            shutil.rmtree(item, ignore_errors=True)
    for item in out_dir.iterdir():
        if item.name.startswith(".") and item.name.endswith((".lnk", ".old", ".tmp")):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)


def _prune(out_dir: Path, keep: int) -> None:
    runs = out_dir / RUNS_DIR
    current = os.readlink(out_dir / CURRENT) if (out_dir / CURRENT).is_symlink() else None
    done = sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in done[:-keep] if keep > 0 else done:
        if current is None or Path(current).name != old.name:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def committed_run(
    out_dir: Path, run_id: str, *, keep: int = 3, links: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a staging directory for one run; on success it becomes ``out/current``.

    Parameters
    ----------
    out_dir
        The output directory (see the module docstring for its layout).
    run_id
        Names the run's directory; run ids sort by start time.
    keep
        Committed runs to keep (the current one always stays).
    links
        Names of the run's files to expose as ``out/<name> -> current/<name>`` (a name the
        run did not write loses its link).

    On any exception the staging directory is removed (and ``runs/``, when this run made
    it) and ``current`` is untouched. The caller holds :func:`output_lock`.
    """
    out_dir = Path(out_dir)
    runs = out_dir / RUNS_DIR
    created = not runs.exists()
    runs.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    staging = runs / f".{run_id}.tmp"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:  # the first run failed: no empty runs/ left behind
            with contextlib.suppress(OSError):
                runs.rmdir()
        raise
    fault_point("before-rename")
    os.replace(staging, runs / run_id)  # complete on disk, not yet current
    fault_point("after-rename")
    _point(out_dir / CURRENT, Path(RUNS_DIR) / run_id)  # the commit
    fault_point("after-commit")
    for name in links:
        link = out_dir / name
        if (runs / run_id / name).exists():
            if not link.is_symlink():
                _point(link, Path(CURRENT) / name)
        elif link.is_symlink():  # the run wrote it in another form (output.single_file)
            link.unlink()
    _prune(out_dir, keep)


@contextlib.contextmanager
def atomic_directory(
    target: Path, *, merge: bool = False, leftovers: bool = False
) -> Iterator[Path]:
    """Yield a fresh staging directory; on success its files replace ``target``'s.

    On any exception the staging directory is removed and ``target`` is left untouched.

    Parameters
    ----------
    target
        The directory to write.
    merge
        False: the staging directory becomes ``target`` (files already in ``target`` that the
        run does not write again are carried over). True: only the staged files replace their
        namesakes in ``target`` (each by one rename), everything else in ``target`` stays; an
        empty staged file ``<name>.stale`` removes ``<name>``. For a command that writes a few
        files beside the user's others.
    leftovers
        Remove the staging directories of earlier writes of ``target`` that died (killed)
        before committing. Only for a caller holding :func:`output_lock` on ``target``: no
        other writer of it can be alive.
    """
    target = Path(target)
    parent = target if merge else target.parent
    parent.mkdir(parents=True, exist_ok=True)
    if leftovers:
        for dead in parent.iterdir():
            mine = dead.name.startswith(f".{target.name}.") and dead.name.endswith(".tmp")
            if mine and dead.is_dir() and not dead.is_symlink():
                shutil.rmtree(dead, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if merge:
            _merge_into(tmp, target)
        else:
            _swap(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge_into(staged: Path, target: Path) -> None:
    for item in sorted(staged.iterdir()):
        if item.name.endswith(STALE_SUFFIX):
            (target / item.name.removesuffix(STALE_SUFFIX)).unlink(missing_ok=True)
            continue
        dest = target / item.name
        if item.is_dir() and dest.is_dir():
            shutil.rmtree(dest)
        os.replace(item, dest)


def _swap(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    for item in target.iterdir():
        dest = tmp / item.name
        if not dest.exists():
            os.replace(item, dest)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
