"""One process per writer: a writer's lease on the store, held for the life of an ingest, watch or compact.

Writers with different names run side by side (each writes only its own files: msgtrace.store.files);
a second process with a taken name is refused, naming the holder.

- Local disk: an exclusive flock on the writer's lock file (`<store>/.lock` for the default
  writer, where older versions kept the one store lock; `_state/writers/<name>/.lock` for the
  others). The kernel releases it when the process dies, however it dies.
- Object storage: a lease object (`lease.json` in the writer's state folder) created with a
  conditional PUT (only if absent), renewed every third of its term by a conditional PUT on the
  ETag it last wrote, and taken over once expired (again by ETag, so of two takers one wins). A
  writer killed on this host is seen at once (its pid is gone); on another host its lease lapses
  after MSGTRACE_LEASE_SECONDS (default 60). A holder that fails to renew stops writing: every
  write of its Store first checks the lease (Store.guard).

Queries take no lease: they read only files that appear whole (msgtrace.store.files).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from msgtrace.store.table import LOCK_FILE, StateFiles, Store, StoreError

if TYPE_CHECKING:
    from msgtrace.store.s3 import S3FileSystem

LEASE_FILE = "lease.json"
LEASE_ENV = "MSGTRACE_LEASE_SECONDS"
LEASE_SECONDS = 60.0
_log = logging.getLogger("msgtrace.lease")


def lease_seconds() -> float:
    """The term of an object-store lease: $MSGTRACE_LEASE_SECONDS, else 60 (at least 3)."""
    try:
        return max(float(os.environ.get(LEASE_ENV) or LEASE_SECONDS), 3.0)
    except ValueError:
        raise StoreError(f"${LEASE_ENV} must be a number of seconds, not {os.environ[LEASE_ENV]!r}") from None


def _who(writer: str | None) -> str:
    return f"writer {writer}" if writer else "the default writer"


def _refusal(store: Store, holder: str) -> StoreError:
    return StoreError.naming(
        "{store} {path}: {who} is in use by msgtrace process {holder}; stop it first, or give this "
        "process another {writer} (each MTA's ingest or watch has a name of its own)",
        path=str(store.root),
        who=_who(store.writer),
        holder=holder,
    )


class WriterLease:
    """This process's lease on its writer of a store (a context manager)."""

    def __init__(self, store: Store | PurePath) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self._fd: int | None = None
        self._remote: _RemoteLease | None = None

    @property
    def path(self) -> PurePath:
        """The lock file (local disk) or lease object (object storage)."""
        return _lock_path(self.store, self.store.state)

    def __enter__(self) -> WriterLease:
        if not self.store.fs.is_local:
            self._remote = _RemoteLease(self.store, self.path)
            self._remote.acquire()
            self.store.guard = self._remote.check
            return self
        try:
            self._fd = self._flock(Path(self.path))
        except OSError as e:  # no such folder and none can be made, no permission, read-only file system
            raise StoreError.naming(
                "{store} {path}: cannot open its lock file {name} ({why}); "
                "run as a user who may write the store, or fix its permissions",
                path=str(self.store.root),
                name=self.path.name,
                why=e.strerror or e,
            ) from None
        return self

    def _flock(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise _refusal(self.store, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._remote is not None:
            self._remote.release()
            self.store.guard = None
            self._remote = None


StoreLock = WriterLease  # the name callers of the one-writer store used


def _lock_path(store: Store, state: StateFiles) -> PurePath:
    if not store.fs.is_local:
        return state.path(LEASE_FILE)
    return store.root / LOCK_FILE if state.dir == store.shared.dir else state.path(LOCK_FILE)


class _RemoteLease:
    """A lease object on object storage, renewed by a daemon thread while held."""

    def __init__(self, store: Store, path: PurePath) -> None:
        self.store, self.path = store, path
        self.fs: S3FileSystem = store.fs  # type: ignore[assignment]
        self.term = lease_seconds()
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self.etag: str | None = None
        self.expires = 0.0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _body(self) -> str:
        self.expires = time.time() + self.term
        return json.dumps(
            {
                "token": self.token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": self.expires,
                "writer": self.store.writer,
            }
        )

    def acquire(self) -> None:
        taken = self.fs.create_text(self.path, self._body())
        if not taken:
            found = self.fs.read_versioned(self.path)
            if found is not None:
                lease = _parse(found[0])
                if not _lapsed(lease):
                    raise _refusal(self.store, _holder_text(lease))
                taken = self.fs.replace_text_if(self.path, self._body(), found[1])
            else:  # released meanwhile
                taken = self.fs.create_text(self.path, self._body())
        found = self.fs.read_versioned(self.path)
        if not taken or found is None or _parse(found[0]).get("token") != self.token:
            holder = _holder_text(_parse(found[0])) if found else "another process"
            raise _refusal(self.store, holder)  # another taker won (or the store ignores conditions)
        self.etag = found[1]
        self._thread = threading.Thread(target=self._renew_loop, name="msgtrace-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.term / 3):
            with self._lock:
                try:
                    if not self.fs.replace_text_if(self.path, self._body(), self.etag or ""):
                        self.lost = "another process took it over"
                    else:
                        found = self.fs.read_versioned(self.path)
                        if found is None or _parse(found[0]).get("token") != self.token:
                            self.lost = "it was taken over"
                        else:
                            self.etag = found[1]
                except Exception as e:  # an unreachable store: the lease lapses unless a later renewal works
                    _log.warning("Could not renew the lease %s: %s", self.path, e)
            if self.lost:
                _log.error("Lost the lease %s: %s; this process writes nothing more.", self.path, self.lost)
                return

    def check(self) -> None:
        """Raise unless the lease is held with a safe margin (called before every write)."""
        if self.lost is None and time.time() > self.expires - self.term / 6:
            self.lost = "it was not renewed in time (the store did not answer)"
        if self.lost is not None:
            raise StoreError(f"store {self.store.root}: lost the lease of {_who(self.store.writer)} ({self.lost})")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            found = self.fs.read_versioned(self.path)
            if found is not None and _parse(found[0]).get("token") == self.token:
                self.fs.delete(self.path)


def _parse(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _lapsed(lease: dict[str, Any]) -> bool:
    """Whether a lease no longer holds: expired, or its holder was a process of this host that is gone."""
    expires = lease.get("expires")
    if not isinstance(expires, int | float) or time.time() > expires:
        return True
    pid = lease.get("pid")
    if lease.get("host") == socket.gethostname() and isinstance(pid, int):
        return not _alive(pid)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _holder_text(lease: dict[str, Any]) -> str:
    left = lease.get("expires")
    until = f", lease expires in {max(int(left - time.time()), 0)} s" if isinstance(left, int | float) else ""
    return f"{lease.get('pid', '?')} on {lease.get('host', '?')}{until}"


def writer_holder(store: Store, state: StateFiles) -> str | None:
    """Who holds a writer's lease now ("pid 123" on local disk, "123 on mx2" on object storage), or
    None when no process does."""
    path = _lock_path(store, state)
    if not store.fs.is_local:
        text = store.fs.read_text(path)
        if text is None:
            return None
        lease = _parse(text)
        return None if _lapsed(lease) else _holder_text(lease)
    pid = _flock_holder(Path(path))
    return None if pid is None else str(pid)


def _flock_holder(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def lock_holder(root: PurePath) -> int | None:
    """The pid of the process holding the default writer's lock on a local store, or None."""
    return _flock_holder(Path(root) / LOCK_FILE) if isinstance(root, Path) else None
