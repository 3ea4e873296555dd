"""Atomic file output, run locks and JSON with a format key.

Every file prune-info writes goes through :func:`atomic_write`: the content lands in a temporary
file beside the target and is renamed over it only once complete, so an interrupted command never
leaves a half-written checkpoint, table or figure behind. The file gets the mode the umask gives
(as ``open`` would), its directory is checked for writability before any work
(:func:`check_writable`), and temporaries a killed run left behind are removed at the next start
of the same output (:func:`remove_stale_temporaries`). Commands that write a whole directory
hold :func:`run_lock` on it, so two of them never write into one directory at once.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prune_info.errors import PruneInfoError, malformed

#: Version of every JSON document prune-info writes; bump on an incompatible change.
JSON_FORMAT_VERSION = 1


#: Name of the advisory lock file :func:`run_lock` keeps in an output directory.
LOCK_NAME = ".prune-info.lock"


def _parent(target: Path) -> Path:
    return target.parent if str(target.parent) else Path(".")


def check_writable(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a file that cannot be written; returns its directory.

    The directory must exist and be writable (the file is created there and renamed over the
    target); an existing target must not be a directory nor a read-only file (which the rename
    would silently replace), and the path must name a file (not be empty or end with a slash).
    """
    text = os.fspath(path)
    if not text or text.endswith(("/", os.sep)):
        raise PruneInfoError(f"cannot write {text!r}: a file name is needed (it is empty or "
                             "ends with a slash); give e.g. out/model.pt")
    target = Path(path)
    parent = _parent(target)
    if not parent.is_dir():
        raise PruneInfoError(
            f"cannot write {target}: directory {parent} does not exist; create it first"
        )
    if target.is_dir():
        raise PruneInfoError(f"cannot write {target}: it is a directory; give a file name")
    if target.is_file() and (not os.access(target, os.W_OK)
                             or target.stat().st_mode & 0o222 == 0):
        # replacing it by a rename would succeed, but the user made it read-only
        raise PruneInfoError(f"cannot write {target}: the file is read-only; choose another "
                             "output, or make it writable (chmod u+w) to replace it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PruneInfoError(
            f"cannot write {target}: directory {parent} is not writable; choose another "
            "output or fix its permissions"
        )
    return parent


def check_writable_dir(directory: str | os.PathLike) -> Path:
    """Refuse, before any work, an output directory that cannot be created or written."""
    out = Path(directory)
    if out.is_symlink() and not out.exists():
        raise PruneInfoError(f"output {out} is a symbolic link to {os.readlink(out)}, which does "
                             "not exist; create its target or give another directory")
    if out.exists():
        if not out.is_dir():
            raise PruneInfoError(f"output {out} is a file; give a directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise PruneInfoError(f"output directory {out} is not writable; choose another or "
                                 "fix its permissions")
        return out
    parent = _parent(out)
    if not parent.is_dir():
        raise PruneInfoError(f"cannot create {out}: directory {parent} does not exist; create "
                             "it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PruneInfoError(f"cannot create {out}: directory {parent} is not writable; choose "
                             "another output or fix its permissions")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` that a killed run left behind; returns them.

    :func:`atomic_write` names them ``.NAME.PID.RANDOM.tmp``; one whose process is gone is stale.
    Those of a live process are kept, and so is every other file, whatever its name: a file
    without the pid (``.NAME.abcdefgh.tmp``) may be the user's, and is never deleted.
    """
    target = Path(path)
    parent = _parent(target)
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[0-9a-f]{8}\.tmp")
    for leftover in parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        match = pattern.fullmatch(leftover.name)
        if match is None or not leftover.is_file() or leftover.is_symlink():
            continue  # not one of ours (another file's, a user's, a link)
        pid = int(match.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed.append(leftover)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with the glob metacharacters ``*?[`` made literal."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on failure delete it.

    The temporary file sits in the target's directory so the final ``os.replace`` is atomic; it
    is created with the mode the umask gives (``0o666 & ~umask``, as ``open`` does) and named
    ``.NAME.PID.RANDOM.tmp``, so that a later run can tell a killed run's leftovers from the
    files of a live one (see :func:`remove_stale_temporaries`).

    Examples
    --------
    >>> with atomic_write("out.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> Path("out.txt").read_text(), [p.name for p in Path(".").iterdir()]
    ('done', ['out.txt'])
    """
    target = Path(path)
    parent = check_writable(target)
    remove_stale_temporaries(target)
    while True:
        tmp = parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise PruneInfoError(
                f"cannot write {target}: {exc.strerror}; choose another output or fix the "
                "permissions of its directory"
            ) from exc
        os.close(fd)
        break
    try:
        yield tmp
        os.replace(tmp, target)
    except Exception as exc:
        problem = _no_room(exc, tmp)
        if problem is None:
            raise
        raise PruneInfoError(f"cannot write {target}: {problem}; free some space or choose "
                             "another output (nothing was written)") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


#: Errors of a write that found no room: a full disk, a file-size limit, a full quota.
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _no_room(exc: BaseException, tmp: Path) -> str | None:
    """Why a failed write found no room (one phrase), or None if that was not the cause.

    The error itself says so when it is an ``OSError`` (anywhere in its chain); writers that
    wrap it away (torch's zip writer reports only "unexpected pos") are recognised by the
    state they leave: a file at the process's size limit, or a disk with no space left.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_ROOM:
            if seen.errno == errno.EFBIG:
                return "the file would exceed the size limit of this process (ulimit -f)"
            return seen.strerror or "no space left on the device"
        seen = seen.__cause__ or seen.__context__
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        written = tmp.stat().st_size if tmp.exists() else 0
        if limit != resource.RLIM_INFINITY and written >= limit - 4096:
            return f"the file would exceed the size limit of this process (ulimit -f, {limit:,} "\
                   "bytes)"
        disk = os.statvfs(_parent(tmp))
        if disk.f_bavail * disk.f_frsize < 1 << 20:
            return f"no space left on the device holding {_parent(tmp)}"
    except (ImportError, OSError):
        return None
    return None


#: Lock files this process holds (resolved paths), for re-entrant :func:`run_lock`.
_HELD: set[str] = set()

#: The most a lock file holds: one pid and a newline.
_LOCK_BYTES = 32


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, _LOCK_BYTES, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _open_lock(lock: Path, directory: str | os.PathLike) -> int:
    """Open (creating it if need be) a lock file that can hurt nothing.

    Never follows a symbolic link (``O_NOFOLLOW``), never waits (``O_NONBLOCK``: a FIFO there
    cannot hang the command), and accepts only a regular file with one link that is empty or
    holds a process id, so that writing our pid into it destroys nothing: a link to the user's
    ``~/.bashrc``, a device or a file of other content is refused, one line naming it.
    """
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fix = "remove it (prune-info keeps only a process id there) or choose another output"
    try:
        try:
            fd = os.open(lock, flags | os.O_CREAT | os.O_EXCL, 0o666)
            return fd
        except FileExistsError:
            fd = os.open(lock, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PruneInfoError(f"cannot lock {directory}: {lock} is a symbolic link; {fix}"
                                 ) from None
        raise PruneInfoError(
            f"cannot lock {directory}: {exc.strerror}; choose another output directory or fix "
            "its permissions"
        ) from exc
    try:
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_nlink != 1:
            problem = f"is a hard link ({info.st_nlink} names share its content)"
        elif info.st_size > _LOCK_BYTES or (info.st_size and _read_pid(fd) is None):
            problem = f"holds something other than a process id ({info.st_size} bytes)"
        if problem:
            raise PruneInfoError(f"cannot lock {directory}: {lock} {problem}; {fix}")
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the advisory lock of an output directory while a command writes into it.

    The lock is ``DIRECTORY/.prune-info.lock``, locked with ``fcntl.flock`` and holding the
    holder's pid. A second writer is refused with the holder's pid; the lock file of a process
    that died is taken over, with a note on stderr (the kernel drops a dead holder's ``flock``,
    so a stale file never blocks). The directory must exist. A lock path that is a link, a FIFO,
    a device or a file holding anything but a pid is refused (see :func:`_open_lock`).

    Re-entrant within a process: a command may hold the lock around a library call that takes
    it too.

    Raises
    ------
    PruneInfoError
        Another live process holds the lock, or the lock path is not a lock file.
    """
    lock = Path(directory) / LOCK_NAME
    key = str(Path(directory).resolve() / LOCK_NAME)
    if key in _HELD:
        yield lock
        return
    fd = _open_lock(lock, directory)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = _read_pid(fd)
            raise PruneInfoError(
                f"{directory} is in use by another prune-info process (pid "
                f"{holder if holder is not None else 'unknown'}); wait for it to finish or "
                "choose another output directory"
            ) from None
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid() and not _pid_alive(previous):
            print(f"note: taking over the stale lock of {directory} left by process {previous}, "
                  "which is no longer running", file=sys.stderr, flush=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        _HELD.add(key)
        try:
            yield lock
        finally:
            _HELD.discard(key)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def locked_output_dir(directory: str | os.PathLike) -> Iterator[Path]:
    """Create (if need be) and lock an output directory for a command writing into it.

    Checks it first (:func:`check_writable_dir`), holds :func:`run_lock` while the block runs,
    and, if the block fails or is interrupted before it wrote anything into a directory this
    call created, removes that directory again: a command that did nothing leaves nothing.
    """
    out = Path(directory)
    check_writable_dir(out)
    created = not out.exists()
    out.mkdir(exist_ok=True)
    with run_lock(out):
        try:
            yield out
        except BaseException:
            # still under the lock: no other process can have taken this directory meanwhile
            if created and all(p.name == LOCK_NAME for p in out.iterdir()):
                (out / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise


def to_plain(obj: Any) -> Any:
    """Turn tensors, numpy values and non-finite floats into plain JSON values."""
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy array or scalar
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def write_json(data: dict, path: str | os.PathLike, kind: str) -> None:
    """Write ``data`` atomically as JSON with ``{"format": kind, "format_version": N}`` first."""
    document = {"format": kind, "format_version": JSON_FORMAT_VERSION, **to_plain(data)}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")


def missing_keys(document: Any, required: Iterable[str]) -> list[str]:
    """The keys of ``required`` that ``document`` lacks; a dotted key (``curves.layerwise``)
    is looked up through nested objects.

    Examples
    --------
    >>> missing_keys({"a": {"b": 1}}, ["a.b", "a.c", "d"])
    ['a.c', 'd']
    """
    absent = []
    for key in required:
        node = document
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                absent.append(key)
                break
            node = node[part]
    return absent


def read_json(path: str | os.PathLike, kind: str | None, fix: str,
              required: Iterable[str] = ()) -> dict:
    """Read a JSON document prune-info wrote (``kind``: its expected ``format``, or None).

    ``required`` lists the keys the reader uses (dotted for nested ones, see
    :func:`missing_keys`): a document of the right format without them is malformed too.

    Raises
    ------
    PruneInfoError
        If the file cannot be read, is not JSON, is not a JSON object, has another format or
        lacks a required key; the message names the file and ends with ``fix``.
    """
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise malformed(path, f"not readable JSON: {exc}", fix) from exc
    if not isinstance(document, dict):
        raise malformed(path, f"a JSON {type(document).__name__}, not an object", fix)
    if kind is not None and document.get("format") != kind:
        raise malformed(path, f"its format is {document.get('format')!r}, not {kind!r}", fix)
    absent = missing_keys(document, required)
    if absent:
        raise malformed(path, f"it lacks {', '.join(absent)}", fix)
    return document


def to_json_text(data: dict, kind: str) -> str:
    """The same document as :func:`write_json`, as a string (for ``--json`` on stdout)."""
    document = {"format": kind, "format_version": JSON_FORMAT_VERSION, **to_plain(data)}
    return json.dumps(document, indent=2)


def cpu_state_dict(state: dict) -> dict:
    """A detached CPU copy of a state_dict (for checkpoints and best-epoch snapshots).

    The copy keeps the ``_metadata`` torch attaches (each module's state version), which some
    modules need to load their weights (torchvision's MNASNet refuses a state_dict without it).
    """
    copied = collections.OrderedDict((k, v.detach().to("cpu", copy=True))
                                     for k, v in state.items())
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        copied._metadata = copy.deepcopy(metadata)  # type: ignore[attr-defined]
    return copied


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_of(record: dict) -> dict | None:
    """The identity in a record :meth:`RunDirectory.owned` wrote: its ``config``."""
    return record.get("config")


class RunDirectory:
    """A directory that one resumable run owns, known by a record of the run's identity.

    ``root/record`` is a JSON document of format ``kind``; ``identity_of(document)`` reads the
    identity of the run that wrote it (by default the ``config`` that :meth:`owned` records), or
    gives None for a record of a run that finished nothing yet (the directory then counts as
    new). :meth:`check` runs before any work: it refuses a file, a directory whose parent is
    missing, a non-empty directory without the record, and a record of another identity (naming
    what differs), and returns the record when the directory already holds this run.
    :meth:`owned` is the context the run works in: the directory created and locked
    (:func:`locked_output_dir`: removed again if the block fails before writing anything),
    checked again under the lock, and, for a run that ``claims`` it, the record
    ``{"config": identity}`` written when the run is new. A run that keeps its own record (a
    pipeline's manifest, a comparison's results) passes ``claims=False`` and writes it itself.

    ``what`` names the run in messages ("a study configuration"); ``other`` how a mismatch reads
    ("another configuration"); ``param`` the parameter that named the directory.
    """

    def __init__(self, root: str | os.PathLike, record: str, kind: str, *, what: str,
                 other: str = "another configuration", param: str = "out_dir",
                 identity_of: Callable[[dict], dict | None] = _config_of,
                 claims: bool = True) -> None:
        self.root = Path(root)
        self.record = self.root / record
        self.kind, self.what, self.other, self.param = kind, what, other, param
        self.identity_of, self.claims = identity_of, claims

    def check(self, identity: dict) -> dict | None:
        """The record when the directory holds this run (resume); None when it is new, empty,
        or holds a run that finished nothing."""
        identity = to_plain(identity)  # as the record's JSON holds it (tuples become lists)
        root = self.root
        if root.exists() and not root.is_dir():
            raise PruneInfoError(f"`{self.param}`={root} is a file; give a directory")
        if not root.parent.is_dir():
            raise PruneInfoError(f"cannot create {root}: directory {root.parent} does not exist")
        check_writable_dir(root)
        if self.record.exists():
            fix = f"delete the directory to start over, or use another `{self.param}`"
            document = read_json(self.record, self.kind, fix)
            saved = self.identity_of(document)
            if saved is None:
                return None
            if not isinstance(saved, dict):
                raise malformed(self.record, "the identity of its run is not a JSON object", fix)
            diffs = [f"{k}: {saved.get(k)!r} there, {identity.get(k)!r} here"
                     for k in sorted(set(saved) | set(identity))
                     if saved.get(k) != identity.get(k)]
            if diffs:
                raise PruneInfoError(f"{root} holds {self.other} ({'; '.join(diffs[:3])}); "
                                     + fix)
            return document
        if root.is_dir() and any(p.name != LOCK_NAME for p in root.iterdir()):
            raise PruneInfoError(f"`{self.param}`={root} is a non-empty directory that holds no "
                                 f"{self.record.name} ({self.what}); give a new or empty "
                                 "directory")
        return None

    @contextlib.contextmanager
    def owned(self, identity: dict) -> Iterator[dict | None]:
        """Lock the directory for the run (see the class); yields the record when the run
        resumes, None when it is new."""
        self.check(identity)
        with locked_output_dir(self.root):
            record = self.check(identity)  # again under the lock, then claimed
            if record is None and self.claims:
                write_json({"config": to_plain(identity)}, self.record, self.kind)
            yield record
