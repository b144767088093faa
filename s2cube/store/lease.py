"""The writer lease: at most one run writes a store at a time.

A lease is one small JSON object at ``STORE/s2cube_lease/lease.json``: owner id, host, pid, when it
was taken and when it expires.  A writer takes it before anything is written
(:meth:`Lease.acquire`) and renews it from a background thread while it runs; every cell write
checks it (:func:`check_lease`) before its shards and again before its manifest record, so a
writer that lost its lease never records a cell.

Acquisition is atomic: on local disk the lease file is written to a temporary file and
hard-linked to its name (it appears whole or not at all); on S3 with a conditional PUT
(``If-None-Match: *``).  Renewing, taking over and releasing are
compare-and-swaps on the version that was read (``If-Match: <ETag>`` on S3, an ``fcntl`` lock
locally).  A second writer is refused with :class:`LeaseError` naming the holder; a lease is
**stale**, and is taken over, when it has expired or when its holder runs on this host and its
process is gone (a killed run resumes at once).  ``break_lease=True`` (``--break-lease``) takes a
live lease: only for a holder known to be dead on another host.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import StoreError
from .location import StoreLike, StoreLocation, store_location

__all__ = [
    "DEFAULT_TTL",
    "LEASE_KEY",
    "Lease",
    "LeaseError",
    "LeaseLostError",
    "LeaseRecord",
    "check_lease",
    "read_lease",
]

#: in a folder of its own that is an (empty) Zarr group, like the manifest's: Zarr warns
#: about every object it does not recognise when it lists a group's members
LEASE_KEY = "s2cube_lease/lease.json"
_LEASE_GROUP = (
    b'{"zarr_format": 3, "node_type": "group", "attributes": '
    b'{"description": "s2cube: the writer lease (lease.json) while a run writes"}}'
)
#: seconds a lease lives without renewal (renewed every third of it); S2CUBE_LEASE_TTL overrides
DEFAULT_TTL = 120.0


class LeaseError(StoreError):
    """Another run holds the store's writer lease."""


class LeaseLostError(LeaseError):
    """This run's lease was taken over (broken or expired) while it was writing."""


def _ttl() -> float:
    return float(os.environ.get("S2CUBE_LEASE_TTL", DEFAULT_TTL))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LeaseRecord:
    """The content of the lease object."""

    owner: str
    host: str
    pid: int
    acquired: str
    expires: float  # seconds since the epoch

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord | None:
        try:
            d = json.loads(data)
            return cls(
                owner=str(d["owner"]),
                host=str(d["host"]),
                pid=int(d["pid"]),
                acquired=str(d["acquired"]),
                expires=float(d["expires"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # a torn or foreign object is no lease

    def stale(self, now: float | None = None) -> bool:
        """Expired, or held by a process of this host that no longer exists."""
        if self.expires < (time.time() if now is None else now):
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)

    def describe(self) -> str:
        until = dt.datetime.fromtimestamp(self.expires, dt.UTC).isoformat(timespec="seconds")
        return f"owner {self.owner} on host {self.host}, pid {self.pid}, expires {until}"


def read_lease(store: StoreLike) -> LeaseRecord | None:
    """The store's current lease record (None: no writer holds it)."""
    data = store_location(store).get(LEASE_KEY)
    return None if data is None else LeaseRecord.from_bytes(data)


def check_lease(store: StoreLike, owner: str | None) -> None:
    """Raise unless a write on behalf of ``owner`` is allowed now.

    ``owner`` is the id of the lease the writing run holds; ``None`` (a direct API write
    outside a run) is allowed only while no live lease is held by anyone.
    """
    loc = store_location(store)
    rec = read_lease(loc)
    if owner is None:
        if rec is not None and not rec.stale():
            raise LeaseError(
                f"store {loc.url!r} is being written by another run ({rec.describe()}); "
                "wait for it to finish"
            )
        return
    if rec is None or rec.owner != owner:
        held = f"now held by {rec.describe()}" if rec else "released"
        raise LeaseLostError(
            f"this run's lease {owner} on store {loc.url!r} was lost ({held}); "
            "stopped before recording more cells. Rerun to resume"
        )


class Lease:
    """The writer lease of one run (a context manager: acquire + renew, then release).

    Examples
    --------
    >>> with Lease("mosaic.zarr") as lease:  # doctest: +SKIP
    ...     write_cell("mosaic.zarr", cell, ds, lease=lease.owner)
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        ttl: float | None = None,
        break_lease: bool = False,
        owner: str | None = None,
    ) -> None:
        self.location: StoreLocation = store_location(store)
        self.ttl = float(ttl if ttl is not None else _ttl())
        self.break_lease = break_lease
        self.owner = owner or uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._token: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: BaseException | None = None
        self.taken_over: LeaseRecord | None = None

    def _record(self) -> LeaseRecord:
        return LeaseRecord(
            owner=self.owner,
            host=self.host,
            pid=self.pid,
            acquired=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            expires=time.time() + self.ttl,
        )

    def acquire(self) -> Lease:
        """Take the lease, or raise :class:`LeaseError` naming the live holder."""
        loc = self.location
        loc.create(LEASE_KEY.rsplit("/", 1)[0] + "/zarr.json", _LEASE_GROUP)  # once per store
        for _ in range(5):
            data = self._record().to_bytes()
            if loc.create(LEASE_KEY, data):
                return self._confirm(data)
            current = loc.get_versioned(LEASE_KEY)
            if current is None:
                continue  # released in between: try to create it again
            other = LeaseRecord.from_bytes(current[0])
            if other is not None and other.owner != self.owner:
                if not (self.break_lease or other.stale()):
                    raise LeaseError(
                        f"store {loc.url!r} is being written by another run "
                        f"({other.describe()}); two runs must not write one store at once. "
                        "Wait for it to finish; if that run is dead (killed on another host), "
                        "rerun with --break-lease (s2cube.mosaic(..., break_lease=True)) or "
                        f"delete {loc.url.rstrip('/')}/{LEASE_KEY}"
                    )
                self.taken_over = other
            if loc.put_if(LEASE_KEY, data, current[1]):
                return self._confirm(data)
        raise LeaseError(
            f"could not take the lease of store {loc.url!r}: it changed on every attempt "
            "(another run is starting); retry"
        )

    def _confirm(self, data: bytes) -> Lease:
        # read back: a server that ignores conditional writes shows up here as someone else's
        got = self.location.get_versioned(LEASE_KEY)
        if got is None or got[0] != data:
            other = LeaseRecord.from_bytes(got[0]) if got else None
            raise LeaseError(
                f"store {self.location.url!r}: another run took the lease at the same moment"
                + (f" ({other.describe()})" if other else "")
                + "; retry when it has finished"
            )
        self._token = got[1]
        return self

    def renew(self) -> None:
        """Extend the lease; :class:`LeaseLostError` if another run took it."""
        if self._token is None:
            raise LeaseError("renew() before acquire()")
        data = self._record().to_bytes()
        if not self.location.put_if(LEASE_KEY, data, self._token):
            self.lost = LeaseLostError(
                f"lease {self.owner} on store {self.location.url!r} was taken by another run"
            )
            raise self.lost
        got = self.location.get_versioned(LEASE_KEY)
        if got is None or got[0] != data:
            self.lost = LeaseLostError(
                f"lease {self.owner} on store {self.location.url!r} was taken by another run"
            )
            raise self.lost
        self._token = got[1]

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except LeaseLostError:
                return
            except Exception:  # a transient store error: retry at the next tick
                continue

    def start(self) -> None:
        """Renew in a daemon thread every third of the TTL until :meth:`release`."""
        self._thread = threading.Thread(target=self._renew_loop, name="s2cube-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._token is not None:
            self.location.delete_if(LEASE_KEY, self._token)
            self._token = None

    def __enter__(self) -> Lease:
        self.acquire()
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
