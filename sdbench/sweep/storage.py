"""How a trial's files travel from the node that ran it to ``OUT/trials/<id>/``: Ray Tune's storage.

A sweep never assumes its workers share the driver's disk. A trial runs into a directory local to
its worker (a temp dir), which the worker then reports to Tune as the trial's checkpoint; Tune copies
it into the sweep's **storage** (``RunConfig(storage_path=...)``): ``--storage``, a path every node
mounts (NFS, EFS, Lustre) or a pyarrow URI (``s3://bucket/prefix``, ``gs://...``), by default
``OUT/ray`` on the driver's disk. The driver, as each trial completes, **fetches** it from the
storage into ``OUT/trials/<id>/`` (a rename when the storage is a local path), checks that every
file the worker listed arrived with its size, and moves the trial's W&B offline run to ``OUT/wandb/``.

The storage must be reachable from every node, or trial outputs written on a node never reach the
driver (the default ``OUT/ray`` on a cluster without a shared filesystem: each node would write to its
own disk). So before any trial runs on a cluster (``--address``) or on a non-local storage, the driver
writes a marker holding a random token into the storage and asks every node that can run a trial to
read it back (:func:`check_nodes`); a node that cannot is refused with one line, before anything runs.
Each trial checks the token again when it starts (a node that joined the cluster later).

Tune's trial directories in the storage are named by sdbench trial id, so a trial whose files reached
the storage but not the sweep directory (the driver was killed in between) is recovered from there by
the next run (:func:`recover`) instead of being run again. A trial with ``trial.checkpoint_every``
also reports each resumable ``checkpoint.pt`` as a partial checkpoint: an attempt Tune retries (its
node lost) continues from the last one, and so does the trial in the next run when the driver died
(:func:`stash_partial` keeps it as ``<trial id>.resume``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sdbench.errors import UserError

MARKER_FILE = "sdbench-storage-check"
"""In the storage's experiment directory: the token of the driver that runs the sweep now."""
MANIFEST_FILE = ".sdbench-files.json"
"""In a trial's checkpoint: every file the worker wrote and its size (removed once fetched)."""
PROGRESS_FILE = "sdbench-progress.json"
"""In a partial checkpoint (a trial with ``trial.checkpoint_every``, still running): the step it holds."""
RESUME_SUFFIX = ".resume"
"""``<experiment>/<trial id>.resume``: the partial checkpoint a trial continues from in the next run."""


@dataclass(frozen=True)
class Storage:
    """Where Tune keeps a sweep's trials: ``uri`` (Tune's ``storage_path``) / ``experiment`` / ``<trial id>``."""

    uri: str
    """A local absolute path or a pyarrow filesystem URI (``s3://bucket/prefix``)."""
    experiment: str
    """Tune's experiment name: the sweep's directory under ``uri``."""

    @property
    def is_local_path(self) -> bool:
        """A plain path (on the driver's disk, or a shared filesystem mounted at the same path)."""
        return "://" not in self.uri

    def filesystem(self) -> tuple[Any, str]:
        """(pyarrow filesystem, the experiment directory's path on it)."""
        import pyarrow.fs

        fs, root = pyarrow.fs.FileSystem.from_uri(self.uri)
        return fs, str(PurePosixPath(root) / self.experiment)


def resolve(storage: str | None, out: Path) -> Storage:
    """The storage of the sweep in ``out``: ``OUT/ray`` by default, else ``storage`` (a path or a URI),
    where the sweep gets its own experiment directory (several sweeps can share one bucket)."""
    import pyarrow.fs

    out = Path(out)
    if storage is None:
        return Storage(str(out / "ray"), "tune")
    storage = storage.strip()
    if not storage:
        raise UserError("--storage is empty (a path every node mounts, or a URI such as s3://bucket/prefix)")
    uri = storage.rstrip("/") if "://" in storage else str(Path(storage).expanduser().resolve())
    try:
        pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for a bad URI
        raise UserError(f"--storage {storage!r} is not a path or a filesystem URI pyarrow can open: {_first_line(e)}") from None
    digest = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]
    return Storage(uri, f"{out.name}-{digest}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ---------------------------------------------------------------- the reachability check
def write_marker(storage: Storage) -> str:
    """Write a fresh token into the storage (driver side); returns it."""
    fs, exp = storage.filesystem()
    token = secrets.token_hex(16)
    try:
        fs.create_dir(exp, recursive=True)
        with fs.open_output_stream(f"{exp}/{MARKER_FILE}") as f:
            f.write(token.encode())
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot write to the trial storage {storage.uri}: {_first_line(e)}") from None
    return token


def probe(uri: str, experiment: str, token: str) -> str | None:
    """On a node: None if it reads the driver's ``token`` from the storage, else why not."""
    try:
        fs, exp = Storage(uri, experiment).filesystem()
        with fs.open_input_stream(f"{exp}/{MARKER_FILE}") as f:
            found = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "the driver's marker file is not there"
    except Exception as e:  # noqa: BLE001
        return _first_line(e)
    return None if found == token else "it holds another driver's marker (a different disk at the same path)"


def unreachable_message(storage: Storage, node: str, host: str, reason: str) -> str:
    return (
        f"trial outputs cannot reach the driver: node {node[:8]} ({host}) cannot read the trial storage {storage.uri} "
        f"({reason}); put --out on a filesystem every node mounts at the same path, or give --storage such a path "
        "or an object-store URI (s3://..., gs://...)"
    )


def check_nodes(storage: Storage, token: str, timeout: float = 300.0) -> list[str]:
    """Ask every live node that can run a trial (it has CPUs) to read the token; ``UserError`` naming
    the first node that cannot. Returns the node ids checked. Needs ``ray.init`` done."""
    import socket

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def check(uri: str, experiment: str, token: str) -> tuple[str, str | None]:
        return socket.gethostname(), probe(uri, experiment, token)

    remote = ray.remote(num_cpus=0, max_retries=0)(check)
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    refs = {
        node: remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            storage.uri, storage.experiment, token
        )
        for node in nodes
    }
    ready, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    for node, ref in refs.items():
        if ref in pending:
            raise UserError(f"node {node[:8]} did not answer the trial-storage check within {timeout:.0f} s")
        host, reason = ray.get(ref)
        if reason is not None:
            raise UserError(unreachable_message(storage, node, host, reason))
    return nodes


# ---------------------------------------------------------------- worker side
def seal(trial_dir: Path) -> None:
    """Before a trial's directory is reported: drop symbolic links (W&B's ``latest-run``) and list every
    file with its size in :data:`MANIFEST_FILE`, so the driver can tell a complete copy from a cut one."""
    files = {}
    for root, dirs, names in os.walk(trial_dir):
        for name in [*names, *dirs]:
            path = Path(root) / name
            if path.is_symlink():
                path.unlink()
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink() and name != MANIFEST_FILE:
                files[path.relative_to(trial_dir).as_posix()] = path.stat().st_size
    (trial_dir / MANIFEST_FILE).write_text(json.dumps({"files": files}, sort_keys=True))


def fetch_partial(uri: str, experiment: str, path: str, trial_dir: Path) -> int:
    """On a node: bring the partial checkpoint at ``path`` on the storage into ``trial_dir`` (its
    ``checkpoint.pt``, which ``run_trial`` continues from); returns its step."""
    import pyarrow.fs

    fs, _ = Storage(uri, experiment).filesystem()
    trial_dir.mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(path, str(trial_dir), source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem())
    return take_progress(trial_dir)


def take_progress(trial_dir: Path) -> int:
    """The step of the partial checkpoint copied into ``trial_dir`` (its progress file is removed)."""
    progress = trial_dir / PROGRESS_FILE
    try:
        return int(json.loads(progress.read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0
    finally:
        progress.unlink(missing_ok=True)


# ---------------------------------------------------------------- driver side
def fetch(fs: Any, path: str, dest: Path, wandb_root: Path) -> None:
    """Bring a trial's reported directory (``path`` on ``fs``) to ``dest`` (``OUT/trials/<id>``), replacing
    what was there; its ``wandb/`` runs go to ``wandb_root``. ``RuntimeError`` if a listed file is missing
    or of another size (``dest`` is then left as it was)."""
    import pyarrow.fs

    dest = Path(dest)
    incoming = dest.parent / f".incoming-{dest.name}"
    shutil.rmtree(incoming, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        shutil.move(path, incoming)  # a rename on the driver's disk; a copy from a mounted shared filesystem
    else:
        pyarrow.fs.copy_files(path, str(incoming), source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem())
    try:
        listed = json.loads((incoming / MANIFEST_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError):
        shutil.rmtree(incoming, ignore_errors=True)
        raise RuntimeError(f"the trial's list of files ({MANIFEST_FILE}) did not arrive from {path}") from None
    for name, size in listed.items():
        got = incoming / name
        if not got.is_file() or got.stat().st_size != size:
            shutil.rmtree(incoming, ignore_errors=True)
            raise RuntimeError(f"{name} of the trial did not arrive complete from {path}")
    (incoming / MANIFEST_FILE).unlink()
    runs = incoming / "wandb"
    if runs.is_dir():
        wandb_root.mkdir(parents=True, exist_ok=True)
        for run in runs.iterdir():
            target = wandb_root / run.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(run), target)
        shutil.rmtree(runs)
    old = dest.parent / f".old-{dest.name}"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    incoming.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def tidy(trials: Path) -> None:
    """What a driver killed in the middle of :func:`fetch` left in ``OUT/trials``: a half-fetched
    ``.incoming-<id>`` is removed; an ``.old-<id>`` whose replacement never arrived is put back."""
    if not trials.is_dir():
        return
    for d in trials.iterdir():
        if d.name.startswith(".incoming-"):
            shutil.rmtree(d, ignore_errors=True)
    for d in trials.iterdir():
        if d.name.startswith(".old-"):
            own = trials / d.name[len(".old-") :]
            if own.exists():
                shutil.rmtree(d, ignore_errors=True)
            else:
                d.rename(own)


def _checkpoints(fs: Any, trial_path: str) -> list[str]:
    import pyarrow.fs

    infos = fs.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith("checkpoint_"))


def recover(storage: Storage, trial_id: str, dest: Path, wandb_root: Path) -> bool:
    """Fetch the trial ``trial_id`` from the storage if a complete copy of it is there (its driver died
    before fetching it); True if it was. An incomplete copy is not fetched (:func:`discard` removes it)."""
    fs, exp = storage.filesystem()
    for path in reversed(_checkpoints(fs, f"{exp}/{trial_id}")):
        if not _is_file(fs, f"{path}/{MANIFEST_FILE}"):  # a partial checkpoint, or a copy cut short
            continue
        try:
            fetch(fs, path, dest, wandb_root)
            return True
        except RuntimeError:
            continue
    return False


def _is_file(fs: Any, path: str) -> bool:
    import pyarrow.fs

    return fs.get_file_info(path).type == pyarrow.fs.FileType.File


def _move_dir(fs: Any, source: str, dest: str) -> None:
    """A directory renamed on ``fs``; copied and deleted where the filesystem cannot (S3 moves files only)."""
    import pyarrow.fs

    try:
        fs.move(source, dest)
    except (OSError, NotImplementedError):
        pyarrow.fs.copy_files(source, dest, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(source)


def stash_partial(storage: Storage, trial_id: str) -> str | None:
    """Keep the newest partial checkpoint of ``trial_id`` (a resumable ``checkpoint.pt`` and its step)
    as ``<trial id>.resume`` for the coming run, replacing an older one; returns the path on the storage
    of the partial checkpoint the trial can continue from, if any."""
    fs, exp = storage.filesystem()
    stash = f"{exp}/{trial_id}{RESUME_SUFFIX}"
    for path in reversed(_checkpoints(fs, f"{exp}/{trial_id}")):
        if _is_file(fs, f"{path}/{PROGRESS_FILE}") and _is_file(fs, f"{path}/checkpoint.pt"):
            try:
                fs.delete_dir(stash)
            except (FileNotFoundError, OSError):
                pass
            _move_dir(fs, path, stash)
            break
    return stash if _is_file(fs, f"{stash}/{PROGRESS_FILE}") else None


def discard(storage: Storage, trial_id: str, resume: bool = False) -> None:
    """Remove what earlier attempts left of ``trial_id`` in the storage (it is about to run again);
    ``resume``: also its ``.resume`` partial checkpoint (it is done)."""
    fs, exp = storage.filesystem()
    for path in [f"{exp}/{trial_id}", *([f"{exp}/{trial_id}{RESUME_SUFFIX}"] if resume else [])]:
        try:
            fs.delete_dir(path)
        except (FileNotFoundError, OSError):
            pass
