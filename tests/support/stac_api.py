"""A real, throwaway STAC API server for the tests.

This module owns :class:`StacApiServer` and :func:`serve_catalog`: they start a private
PostgreSQL cluster (:mod:`support.postgres`), install PostGIS and pgstac into it and load STAC
collections and items (:mod:`support.pgstac`, with ``pypgstac``) and serve them with
``stac-fastapi-pgstac`` under uvicorn on ``127.0.0.1``. Clients (``pystac-client``, s2cube's own
search code, a browser) then talk plain HTTP to a genuine STAC API, exactly as they would to
Earth Search or the Planetary Computer.  It lives under ``tests/`` because only the tests use it.

Why pgstac: the project's design study found that stac-fastapi-pgstac + pypgstac on Debian's
PostgreSQL/PostGIS implements the STAC API fully -- bbox/intersects, datetime, the query
extension, CQL2 text and JSON filters, sortby, fields and token paging -- and starts in about
15 s (measured here: 2-3 s on an idle 2-core machine, cluster + pgstac migration + uvicorn),
whereas ``rustac serve`` only does basic search and paging. ``eo:cloud_cover`` (and a few other
numeric Sentinel-2 properties) are registered as numeric queryables so that ``sortby`` and
``filter``/``query`` on them compare numbers, not strings.

Requirements
------------
* PostgreSQL server binaries and PostGIS: ``bash .ci/install_system.sh`` (Debian:
  ``postgresql`` and ``postgresql-<major>-postgis-3``); see :mod:`support.postgres`.
* Python: ``pip install 's2cube[stacapi]'`` (``stac-fastapi-pgstac``, ``pypgstac[psycopg]``,
  ``psycopg[binary,pool]``, ``uvicorn``).

Examples
--------
>>> from support.stac_api import serve_catalog
>>> with serve_catalog("data/catalog.json") as api:  # doctest: +SKIP
...     client = pystac_client.Client.open(api.url)
...     items = client.search(collections=["sentinel-2-l2a"]).item_collection()
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import pgstac
from .pgstac import DEFAULT_QUERYABLES
from .postgres import (
    DB_USER,
    PostgresCluster,
    StacApiError,
    find_postgres,
    free_port,
    log_tail,
    root_user_problem,
)
from .static_catalog import read_static, to_dict

if TYPE_CHECKING:  # pragma: no cover
    import pystac

    from .static_catalog import StaticSource

__all__ = [
    "DEFAULT_QUERYABLES",
    "StacApiError",
    "StacApiServer",
    "missing_requirements",
    "serve_catalog",
]

INSTALL_PYTHON_HINT = "pip install 's2cube[stacapi]'"

_DB_NAME = "pgstac"
_PY_MODULES = {
    "stac_fastapi.pgstac": "stac-fastapi-pgstac",
    "pypgstac": "pypgstac",
    "psycopg": "psycopg[binary]",
    "psycopg_pool": "psycopg-pool",
    "uvicorn": "uvicorn",
}


def _missing_python_modules() -> list[str]:
    missing = []
    for mod, pkg in _PY_MODULES.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(pkg)
    return missing


def missing_requirements() -> list[str]:
    """List what is missing to run a :class:`StacApiServer` (empty if nothing).

    Cheap enough to call from a ``pytest`` skip condition: it neither starts nor
    imports the server.

    Returns
    -------
    list of str
        Human-readable problems, each naming what to install.
    """
    problems: list[str] = []
    try:
        find_postgres()
    except StacApiError as exc:
        problems.append(str(exc))
    missing = _missing_python_modules()
    if missing:
        problems.append(
            f"Python packages missing: {', '.join(missing)}; "
            f"install them with `{INSTALL_PYTHON_HINT}`."
        )
    root = root_user_problem()
    if root:
        problems.append(root)
    return problems


def _uvicorn_app_target() -> list[str]:
    """The uvicorn app argument(s) for stac-fastapi-pgstac (factory in 6.x/7.x, ``app`` before)."""
    spec = importlib.util.find_spec("stac_fastapi.pgstac.app")
    src = ""
    if spec is not None and spec.origin:
        with contextlib.suppress(OSError):
            src = Path(spec.origin).read_text(encoding="utf-8")
    if re.search(r"^def create_app\(", src, flags=re.M):
        return ["stac_fastapi.pgstac.app:create_app", "--factory"]
    return ["stac_fastapi.pgstac.app:app"]


class StacApiServer:
    """A throwaway pgstac-backed STAC API on ``127.0.0.1``.

    Parameters
    ----------
    port : int, optional
        Port for the HTTP API. Default: a free port chosen at start.
    workdir : str or os.PathLike, optional
        Directory in which the temporary directory (database cluster and logs)
        is created. Default: the system temp dir. When running as root it must
        be reachable by the ``postgres`` OS user.
    startup_timeout : float, default 90
        Seconds to wait for PostgreSQL and for the API to answer.
    queryables : mapping, optional
        Queryables to register (name -> JSON-schema definition); numeric ones
        (``"type": "number"`` or ``"integer"``) sort and compare as numbers.
        Default: :data:`DEFAULT_QUERYABLES` (includes ``eo:cloud_cover``).

    Attributes
    ----------
    url : str
        Root URL of the API, e.g. ``"http://127.0.0.1:PORT"`` (after :meth:`start`).
    dsn : str
        libpq connection string of the pgstac database (after :meth:`start`).
    startup_seconds : float or None
        Wall time :meth:`start` took.

    Examples
    --------
    >>> with StacApiServer() as api:  # doctest: +SKIP
    ...     api.load([collection], items)
    ...     pystac_client.Client.open(api.url).search(max_items=5)
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 90.0,
        queryables: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._requested_port = port
        self.startup_timeout = float(startup_timeout)
        self.queryables: dict[str, dict[str, Any]] = {
            k: dict(v)
            for k, v in (DEFAULT_QUERYABLES if queryables is None else queryables).items()
        }
        self.startup_seconds: float | None = None
        self._pg = PostgresCluster(workdir=workdir, startup_timeout=startup_timeout)
        self._api_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # ---------------------------------------------------------------- properties
    @property
    def url(self) -> str:
        """Root URL of the running API (``http://127.0.0.1:PORT``)."""
        if self._api_port is None or self._proc is None:
            raise StacApiError("StacApiServer is not running; call start() first")
        return f"http://127.0.0.1:{self._api_port}"

    @property
    def port(self) -> int:
        """HTTP port of the running API."""
        if self._api_port is None:
            raise StacApiError("StacApiServer is not running; call start() first")
        return self._api_port

    @property
    def dsn(self) -> str:
        """Connection string of the pgstac database (for direct SQL in tests)."""
        return self._pg.dsn(_DB_NAME)

    @property
    def running(self) -> bool:
        """Whether the API process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def tmpdir(self) -> Path | None:
        """The private directory holding the cluster and the logs (None when stopped)."""
        return self._pg.tmpdir

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self.running else "stopped"
        return f"<StacApiServer {state}>"

    def __enter__(self) -> StacApiServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- the API process
    def _spawn_api(self, port: int) -> subprocess.Popen[bytes]:
        tmp = self._pg.tmpdir
        assert tmp is not None and self._pg.port is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGUSER=DB_USER,
            PGPASSWORD=self._pg.password,
            PGHOST="127.0.0.1",
            PGPORT=str(self._pg.port),
            PGDATABASE=_DB_NAME,
            PGSSLMODE="disable",
            # older stac-fastapi-pgstac (< 4) names
            POSTGRES_USER=DB_USER,
            POSTGRES_PASS=self._pg.password,
            POSTGRES_HOST_READER="127.0.0.1",
            POSTGRES_HOST_WRITER="127.0.0.1",
            POSTGRES_PORT=str(self._pg.port),
            POSTGRES_DBNAME=_DB_NAME,
            DB_MIN_CONN_SIZE="1",
            DB_MAX_CONN_SIZE="5",
            ENABLE_TRANSACTIONS_EXTENSIONS="false",
        )
        env.setdefault("STAC_FASTAPI_TITLE", "s2cube test STAC API")
        env.setdefault("STAC_FASTAPI_DESCRIPTION", "Throwaway pgstac STAC API (s2cube tests)")
        env.setdefault("STAC_FASTAPI_LANDING_ID", "s2cube-test-stac-api")
        env.setdefault("STAC_FASTAPI_VERSION", "1.0.0")
        for key in ("ENABLED_EXTENSIONS", "PREFIX_PATH", "ROOT_PATH", "UVICORN_ROOT_PATH"):
            env.pop(key, None)
        cmd = [sys.executable, "-m", "uvicorn", *_uvicorn_app_target()]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--log-level", "warning", "--no-access-log"]
        log = open(tmp / "uvicorn.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            # cwd=tmp: pydantic settings read a ".env" from the working directory
            return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def _wait_api(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
        """Wait until ``GET /`` answers 200. False if the process died (e.g. port taken)."""
        url = f"http://127.0.0.1:{port}/"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        assert self._pg.tmpdir is not None
        raise StacApiError(
            f"stac-fastapi-pgstac did not answer on {url} within {self.startup_timeout:.0f} s.\n"
            f"uvicorn log tail:\n{log_tail(self._pg.tmpdir / 'uvicorn.log')}"
        )

    # ---------------------------------------------------------------- public API
    def start(self) -> StacApiServer:
        """Create the cluster, install pgstac and start the API.

        Returns
        -------
        StacApiServer
            ``self``, so that ``api = StacApiServer().start()`` works.

        Raises
        ------
        StacApiError
            If PostgreSQL/PostGIS or the Python packages are missing (the
            message names what to install), or if a step fails or times out
            (the message includes the relevant log tail).
        """
        if self.running:
            return self
        missing = _missing_python_modules()
        if missing:
            raise StacApiError(
                f"StacApiServer needs the Python packages {', '.join(missing)}: "
                f"`{INSTALL_PYTHON_HINT}`"
            )
        t0 = time.perf_counter()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._pg.start()
            self._pg.create_database(_DB_NAME, extensions=("postgis", "btree_gist"))
            deadline = time.monotonic() + self.startup_timeout
            attempts = 1 if self._requested_port else 3
            for attempt in range(attempts):
                port = self._requested_port or free_port()
                # Start the app while pgstac is being installed: importing it takes seconds.
                self._proc = self._spawn_api(port)
                self._api_port = port
                if attempt == 0:
                    pgstac.migrate(self.dsn, self.queryables)
                if self._wait_api(self._proc, port, deadline):
                    break
                self._proc = None
            else:
                assert self._pg.tmpdir is not None
                raise StacApiError(
                    f"stac-fastapi-pgstac (uvicorn) exited during startup.\n"
                    f"uvicorn log tail:\n{log_tail(self._pg.tmpdir / 'uvicorn.log')}"
                )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        """Stop the API and PostgreSQL and delete the temporary directory. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._api_port = None
        self._pg.stop()
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def load(
        self,
        collections: Iterable[Mapping[str, Any] | pystac.Collection],
        items: Iterable[Mapping[str, Any] | pystac.Item],
    ) -> None:
        """Upsert collections, then items, into the running server.

        Can be called any number of times after :meth:`start`; an item or
        collection with an existing id replaces the stored one. Hrefs are stored
        as given (see :func:`serve_catalog` to make relative asset hrefs
        absolute).

        Parameters
        ----------
        collections : iterable of dict or pystac.Collection
            Collections; every item's ``collection`` must be among them or
            already loaded.
        items : iterable of dict or pystac.Item
            Items, each with a ``collection`` field.
        """
        if not self._pg.running:
            raise StacApiError("StacApiServer is not running; call start() first")
        cols = [to_dict(c) for c in collections]
        its = [to_dict(i) for i in items]
        for it in its:
            if not it.get("collection"):
                raise ValueError(f"item {it.get('id')!r} has no 'collection'; pgstac needs one")
        pgstac.load(self.dsn, cols, its)


def serve_catalog(catalog_path_or_items: StaticSource, **kw: Any) -> StacApiServer:
    """Start a :class:`StacApiServer` serving a static catalog.

    Every relative asset href is made absolute (a local file path, resolved
    against the item's own JSON file) before loading, so clients of the API
    can open the assets directly.

    Parameters
    ----------
    catalog_path_or_items : path, pystac.Catalog or list
        Anything :func:`support.static_catalog.read_static` reads: a ``catalog.json`` (or a
        directory holding one), an opened catalog or collection, or a list of items and
        collections (dicts or pystac objects).
    **kw
        Passed to :class:`StacApiServer` (``port``, ``workdir``, ...).

    Returns
    -------
    StacApiServer
        The running server (use it as a context manager or call ``stop()``).
    """
    collections, items = read_static(catalog_path_or_items)
    server = StacApiServer(**kw).start()
    try:
        server.load(collections, items)
    except BaseException:
        server.stop()
        raise
    return server
