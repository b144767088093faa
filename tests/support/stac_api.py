"""A real, throwaway STAC API server for tests and demos.

This module owns :class:`StacApiServer` and :func:`serve_catalog`: they start a
private PostgreSQL cluster in a temporary directory, install PostGIS and pgstac
into it (``pypgstac`` migrations), load STAC collections and items with
``pypgstac``'s loader and serve them with ``stac-fastapi-pgstac`` under uvicorn
on ``127.0.0.1``. Clients (``pystac-client``, ``s2cube``'s own search code, a
browser) then talk plain HTTP to a genuine STAC API, exactly as they would to
Earth Search or the Planetary Computer.

Why pgstac: the project's design study found that stac-fastapi-pgstac + pypgstac
on Debian's PostgreSQL/PostGIS implements the STAC API fully -- bbox/intersects,
datetime, the query extension, CQL2 text and JSON filters, sortby, fields and
token paging -- and starts in about 15 s (measured here: 2-3 s on an idle
2-core machine, cluster + pgstac migration + uvicorn), whereas ``rustac serve``
only does basic search and paging. ``eo:cloud_cover`` (and a few other numeric Sentinel-2
properties) are registered as numeric queryables so that ``sortby`` and
``filter``/``query`` on them compare numbers, not strings.

Requirements
------------
* PostgreSQL server binaries and PostGIS: ``bash .ci/install_system.sh``
  (Debian: ``postgresql`` and ``postgresql-<major>-postgis-3``). Binaries are
  found with ``$S2CUBE_PG_BINDIR``, ``pg_config --bindir``, ``initdb`` on
  ``PATH`` or ``/usr/lib/postgresql/*/bin``.
* Python: ``pip install 's2cube[stacapi]'`` (``stac-fastapi-pgstac``,
  ``pypgstac[psycopg]``, ``psycopg[binary,pool]``, ``uvicorn``).

PostgreSQL refuses to run as root; when the current process is root the
cluster is created and run as the ``postgres`` system user (``runuser`` or
``setpriv``), otherwise as the current user.

Examples
--------
>>> from s2cube.testing.stac_api import serve_catalog
>>> with serve_catalog("data/catalog.json") as api:  # doctest: +SKIP
...     client = pystac_client.Client.open(api.url)
...     items = client.search(collections=["sentinel-2-l2a"]).item_collection()
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2cube.errors import S2CubeError

if TYPE_CHECKING:  # pragma: no cover
    import pystac

__all__ = [
    "DEFAULT_QUERYABLES",
    "StacApiError",
    "StacApiServer",
    "missing_requirements",
    "serve_catalog",
]

INSTALL_SYSTEM_HINT = "bash .ci/install_system.sh"
INSTALL_PYTHON_HINT = "pip install 's2cube[stacapi]'"

#: Numeric queryables registered in every server (name -> JSON-schema definition).
DEFAULT_QUERYABLES: dict[str, dict[str, Any]] = {
    "eo:cloud_cover": {
        "title": "Cloud Cover",
        "description": "Estimate of cloud cover, in %",
        "type": "number",
        "minimum": 0,
        "maximum": 100,
    },
    "s2:nodata_pixel_percentage": {
        "title": "No-data pixel percentage",
        "description": "Share of no-data pixels in the tile, in %",
        "type": "number",
        "minimum": 0,
        "maximum": 100,
    },
}



class StacApiError(S2CubeError, RuntimeError):
    """The STAC API server cannot start or run (missing PostgreSQL/PostGIS/packages, a failed step).

    A :class:`RuntimeError`; the message names what to install or includes the failing log's tail.
    """


_DB_NAME = "pgstac"
_DB_USER = "postgres"
_OS_DB_USER = "postgres"  # OS account that runs PostgreSQL when we are root
_STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection", "child", "item", "items"})
_PY_MODULES = {
    "stac_fastapi.pgstac": "stac-fastapi-pgstac",
    "pypgstac": "pypgstac",
    "psycopg": "psycopg[binary]",
    "psycopg_pool": "psycopg-pool",
    "uvicorn": "uvicorn",
}


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class _PgInstall:
    """Location of a PostgreSQL server installation with PostGIS."""

    bindir: Path
    sharedir: Path | None

    def exe(self, name: str) -> str:
        return str(self.bindir / name)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _candidate_bindirs() -> list[Path]:
    """Directories that may hold ``initdb``/``pg_ctl``/``postgres``, best first."""
    out: list[Path] = []
    env = os.environ.get("S2CUBE_PG_BINDIR")
    if env:
        return [Path(env)]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            res = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            out.append(Path(res.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        out.append(Path(initdb).resolve().parent)

    def _major(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return -1.0

    out.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True))
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def _sharedir(bindir: Path) -> Path | None:
    """The ``share`` directory (holding ``extension/``) of the installation in *bindir*."""
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            res = subprocess.run(
                [str(pg_config), "--sharedir"], capture_output=True, text=True, timeout=10, check=True
            )
            share = Path(res.stdout.strip())
            if share.is_dir():
                return share
    # Debian layout: /usr/lib/postgresql/<major>/bin -> /usr/share/postgresql/<major>
    if bindir.parent.parent == Path("/usr/lib/postgresql"):
        share = Path("/usr/share/postgresql") / bindir.parent.name
        if share.is_dir():
            return share
    share = bindir.parent / "share" / "postgresql"
    if share.is_dir():
        return share
    share = bindir.parent / "share"
    return share if share.is_dir() else None


def _find_postgres() -> _PgInstall:
    """Find a PostgreSQL server installation, preferring one with PostGIS.

    Raises
    ------
    StacApiError
        If no server binaries or no PostGIS extension are found.
    """
    servers = [
        d for d in _candidate_bindirs() if all((d / n).exists() for n in ("initdb", "pg_ctl", "postgres"))
    ]
    if not servers:
        where = os.environ.get("S2CUBE_PG_BINDIR") or "pg_config --bindir, PATH, /usr/lib/postgresql/*/bin"
        raise StacApiError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
            f"(looked in {where}). Install PostgreSQL and PostGIS with `{INSTALL_SYSTEM_HINT}` "
            "(Debian: apt-get install postgresql postgresql-<major>-postgis-3) "
            "or point $S2CUBE_PG_BINDIR at the bin directory."
        )
    unknown: _PgInstall | None = None
    for d in servers:
        share = _sharedir(d)
        if share is None:
            unknown = unknown or _PgInstall(d, None)
            continue
        if (share / "extension" / "postgis.control").exists():
            return _PgInstall(d, share)
    if unknown is not None:  # cannot tell; CREATE EXTENSION will say
        return unknown
    raise StacApiError(
        f"PostGIS is not installed for the PostgreSQL server in {servers[0]}. "
        f"Install it with `{INSTALL_SYSTEM_HINT}` "
        f"(Debian: apt-get install postgresql-{servers[0].parent.name}-postgis-3)."
    )


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
        _find_postgres()
    except StacApiError as exc:
        problems.append(str(exc))
    missing = _missing_python_modules()
    if missing:
        problems.append(
            f"Python packages missing: {', '.join(missing)}; install them with `{INSTALL_PYTHON_HINT}`."
        )
    if _is_root():
        try:
            import pwd

            pwd.getpwnam(_OS_DB_USER)
        except KeyError:
            problems.append(
                f"running as root needs a '{_OS_DB_USER}' system user to run PostgreSQL "
                f"(created by the Debian postgresql package: `{INSTALL_SYSTEM_HINT}`)."
            )
    return problems


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "<no log>"
    return data[-n:].decode("utf-8", "replace")


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


# --------------------------------------------------------------------------- server


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
        self._workdir = Path(workdir) if workdir is not None else None
        self.startup_timeout = float(startup_timeout)
        self.queryables: dict[str, dict[str, Any]] = {
            k: dict(v) for k, v in (DEFAULT_QUERYABLES if queryables is None else queryables).items()
        }
        self.startup_seconds: float | None = None
        self._tmp: Path | None = None
        self._pg: _PgInstall | None = None
        self._pg_port: int | None = None
        self._pg_running = False
        self._password = secrets.token_hex(16)
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
        if self._pg_port is None or not self._pg_running:
            raise StacApiError("StacApiServer is not running; call start() first")
        return (
            f"postgresql://{_DB_USER}:{self._password}@127.0.0.1:{self._pg_port}/{_DB_NAME}"
            "?sslmode=disable"
        )

    @property
    def running(self) -> bool:
        """Whether the API process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def tmpdir(self) -> Path | None:
        """The private directory holding the cluster and the logs (None when stopped)."""
        return self._tmp

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self.running else "stopped"
        return f"<StacApiServer {state}>"

    # ---------------------------------------------------------------- context manager
    def __enter__(self) -> StacApiServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- helpers
    def _as_db_user(self, cmd: list[str]) -> list[str]:
        """Wrap *cmd* to run as the ``postgres`` OS user when we are root."""
        if not _is_root():
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", _OS_DB_USER, "--", *cmd]
        if shutil.which("setpriv"):
            import pwd

            pw = pwd.getpwnam(_OS_DB_USER)
            return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--", *cmd]
        raise StacApiError(
            "running as root, but neither `runuser` nor `setpriv` (util-linux) is available "
            "to run PostgreSQL as the 'postgres' user"
        )

    def _run_pg(self, cmd: list[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
        assert self._tmp is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        res = subprocess.run(
            self._as_db_user(cmd),
            cwd=self._tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if res.returncode != 0:
            log = _tail(self._tmp / "postgres.log")
            raise StacApiError(
                f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n"
                f"stdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}\npostgres.log tail:\n{log}"
            )
        return res

    def _make_tmpdir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="s2cube-stacapi-", dir=self._workdir))
        pwfile = tmp / "pwfile"
        pwfile.write_text(self._password + "\n")
        if _is_root():
            import pwd

            pw = pwd.getpwnam(_OS_DB_USER)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            os.chmod(tmp, 0o700)
            os.chmod(pwfile, 0o600)
            probe = subprocess.run(self._as_db_user(["test", "-w", str(tmp)]), capture_output=True)
            if probe.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StacApiError(
                    f"the '{_OS_DB_USER}' OS user cannot write to {tmp}; pass a workdir it can reach "
                    "(every parent directory must be traversable), e.g. one under /tmp"
                )
        return tmp

    def _init_cluster(self) -> None:
        assert self._tmp is not None and self._pg is not None
        pgdata = self._tmp / "pgdata"
        self._run_pg(
            [
                self._pg.exe("initdb"),
                "-D", str(pgdata),
                "-U", _DB_USER,
                f"--pwfile={self._tmp / 'pwfile'}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
            timeout=self.startup_timeout,
        )  # fmt: skip
        conf = (
            "\n# --- s2cube.testing.stac_api: throwaway, speed over durability ---\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "max_connections = 50\n"
            "log_min_messages = warning\n"
            "jit = off\n"
        )
        with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(conf)

    def _start_postgres(self) -> None:
        assert self._tmp is not None and self._pg is not None
        last: Exception | None = None
        for _ in range(3):
            port = _free_port()
            try:
                self._run_pg(
                    [
                        self._pg.exe("pg_ctl"),
                        "-D", str(self._tmp / "pgdata"),
                        "-l", str(self._tmp / "postgres.log"),
                        "-o", f"-p {port}",
                        "-w", "-t", str(int(self.startup_timeout)),
                        "start",
                    ],
                    "pg_ctl start",
                    timeout=self.startup_timeout + 10,
                )  # fmt: skip
            except StacApiError as exc:  # most likely a port race with another process
                last = exc
                continue
            self._pg_port = port
            self._pg_running = True
            return
        raise StacApiError(f"could not start PostgreSQL: {last}")

    def _create_database(self) -> None:
        import psycopg

        assert self._pg_port is not None
        admin = (
            f"postgresql://{_DB_USER}:{self._password}@127.0.0.1:{self._pg_port}/postgres?sslmode=disable"
        )
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{_DB_NAME}"')
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.Error as exc:
                raise StacApiError(
                    f"CREATE EXTENSION postgis failed ({exc}). Install PostGIS for the PostgreSQL "
                    f"in {self._pg.bindir if self._pg else '?'} with `{INSTALL_SYSTEM_HINT}`."
                ) from exc
            conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    def _pgstac_db(self) -> tuple[Any, Any]:
        """A ``(PgstacDB, pool)`` pair on our database; close the pool when done."""
        from psycopg_pool import ConnectionPool
        from pypgstac.db import PgstacDB

        pool = ConnectionPool(conninfo=self.dsn, min_size=0, max_size=1, open=True)
        return PgstacDB(dsn=self.dsn, pool=pool), pool

    def _migrate(self) -> None:
        from pypgstac.migrate import Migrate

        db, pool = self._pgstac_db()
        try:
            with db:
                Migrate(db).run_migration()
            with db:
                self._register_queryables(db)
        finally:
            pool.close()

    def _register_queryables(self, db: Any) -> None:
        """Register :attr:`queryables` (numeric ones with a float/int wrapper and a BTREE index)."""
        conn = db.connect()
        has_upsert = conn.execute(
            "SELECT to_regprocedure('pgstac.upsert_queryable(text,jsonb,text,text,text[],text[])')"
        ).fetchone()[0]
        for name, definition in self.queryables.items():
            types = definition.get("type")
            types = set(types) if isinstance(types, list) else {types}
            wrapper = "to_int" if "integer" in types else "to_float" if "number" in types else None
            index = "BTREE" if wrapper else None
            payload = json.dumps(definition)
            if has_upsert:
                conn.execute(
                    "SELECT pgstac.upsert_queryable(%s, %s::jsonb, %s, %s)",
                    (name, payload, wrapper, index),
                )
            else:  # older pgstac (< 0.10): plain table
                with conn.transaction():
                    conn.execute("DELETE FROM pgstac.queryables WHERE name = %s", (name,))
                    conn.execute(
                        "INSERT INTO pgstac.queryables"
                        " (name, definition, property_wrapper, property_index_type)"
                        " VALUES (%s, %s::jsonb, %s, %s)",
                        (name, payload, wrapper, index),
                    )

    def _spawn_api(self, port: int) -> subprocess.Popen[bytes]:
        assert self._tmp is not None and self._pg_port is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGUSER=_DB_USER,
            PGPASSWORD=self._password,
            PGHOST="127.0.0.1",
            PGPORT=str(self._pg_port),
            PGDATABASE=_DB_NAME,
            PGSSLMODE="disable",
            # older stac-fastapi-pgstac (< 4) names
            POSTGRES_USER=_DB_USER,
            POSTGRES_PASS=self._password,
            POSTGRES_HOST_READER="127.0.0.1",
            POSTGRES_HOST_WRITER="127.0.0.1",
            POSTGRES_PORT=str(self._pg_port),
            POSTGRES_DBNAME=_DB_NAME,
            DB_MIN_CONN_SIZE="1",
            DB_MAX_CONN_SIZE="5",
            ENABLE_TRANSACTIONS_EXTENSIONS="false",
        )
        env.setdefault("STAC_FASTAPI_TITLE", "s2cube test STAC API")
        env.setdefault("STAC_FASTAPI_DESCRIPTION", "Throwaway pgstac STAC API (s2cube.testing.stac_api)")
        env.setdefault("STAC_FASTAPI_LANDING_ID", "s2cube-test-stac-api")
        env.setdefault("STAC_FASTAPI_VERSION", "1.0.0")
        for key in ("ENABLED_EXTENSIONS", "PREFIX_PATH", "ROOT_PATH", "UVICORN_ROOT_PATH"):
            env.pop(key, None)
        cmd = [
            sys.executable, "-m", "uvicorn",
            *_uvicorn_app_target(),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip
        log = open(self._tmp / "uvicorn.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            # cwd=tmp: pydantic settings read a ".env" from the working directory
            return subprocess.Popen(cmd, cwd=self._tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
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
        assert self._tmp is not None
        raise StacApiError(
            f"stac-fastapi-pgstac did not answer on {url} within {self.startup_timeout:.0f} s.\n"
            f"uvicorn log tail:\n{_tail(self._tmp / 'uvicorn.log')}"
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
                f"StacApiServer needs the Python packages {', '.join(missing)}: `{INSTALL_PYTHON_HINT}`"
            )
        t0 = time.perf_counter()
        self._pg = _find_postgres()
        if _is_root():
            import pwd

            try:
                pwd.getpwnam(_OS_DB_USER)
            except KeyError:
                raise StacApiError(
                    f"running as root needs a '{_OS_DB_USER}' OS user to run PostgreSQL; "
                    f"`{INSTALL_SYSTEM_HINT}` creates it"
                ) from None
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._tmp = self._make_tmpdir()
            self._init_cluster()
            self._start_postgres()
            self._create_database()
            deadline = time.monotonic() + self.startup_timeout
            attempts = 1 if self._requested_port else 3
            for attempt in range(attempts):
                port = self._requested_port or _free_port()
                # Start the app while pgstac is being installed: importing it takes seconds.
                self._proc = self._spawn_api(port)
                self._api_port = port
                if attempt == 0:
                    self._migrate()
                if self._wait_api(self._proc, port, deadline):
                    break
                self._proc = None
            else:
                raise StacApiError(
                    f"stac-fastapi-pgstac (uvicorn) exited during startup.\n"
                    f"uvicorn log tail:\n{_tail(self._tmp / 'uvicorn.log')}"
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
        if self._pg_running and self._tmp is not None and self._pg is not None:
            self._pg_running = False
            for mode in ("fast", "immediate"):
                try:
                    self._run_pg(
                        [self._pg.exe("pg_ctl"), "-D", str(self._tmp / "pgdata"), "-m", mode, "-w", "stop"],
                        "pg_ctl stop",
                        timeout=60,
                    )
                    break
                except (StacApiError, subprocess.TimeoutExpired):
                    continue
        self._pg_port = None
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
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
        if not self._pg_running:
            raise StacApiError("StacApiServer is not running; call start() first")
        from pypgstac.load import Loader, Methods

        cols = [_to_dict(c) for c in collections]
        its = [_to_dict(i) for i in items]
        for it in its:
            if not it.get("collection"):
                raise ValueError(f"item {it.get('id')!r} has no 'collection'; pgstac needs one")
        db, pool = self._pgstac_db()
        try:
            with db:
                loader = Loader(db=db)
                if cols:
                    loader.load_collections(iter(cols), insert_mode=Methods.upsert)
                if its:
                    loader.load_items(iter(its), insert_mode=Methods.upsert)
        finally:
            pool.close()


# --------------------------------------------------------------------------- static catalogs


def _to_dict(obj: Mapping[str, Any] | Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return copy.deepcopy(dict(obj))
    if hasattr(obj, "to_dict"):
        return obj.to_dict(include_self_link=False, transform_hrefs=False)
    raise TypeError(f"expected a STAC dict or pystac object, got {type(obj).__name__}")


def _self_href(obj: Mapping[str, Any] | Any) -> str | None:
    if isinstance(obj, Mapping):
        for link in obj.get("links", []):
            if link.get("rel") == "self" and link.get("href"):
                return str(link["href"])
        return None
    get = getattr(obj, "get_self_href", None)
    return get() if get is not None else None


def _absolutize(d: dict[str, Any], base: str | None) -> dict[str, Any]:
    """Make relative asset hrefs absolute against *base* (the object's own file) and clean links.

    Structural links (self/root/parent/collection/child/item) are dropped -- the
    API writes its own; other relative link hrefs are made absolute too.
    """
    from pystac.utils import is_absolute_href, make_absolute_href

    def fix(href: str) -> str:
        if is_absolute_href(href):
            return href
        if base is None:
            return os.path.abspath(href)
        return make_absolute_href(href, base)

    for asset in (d.get("assets") or {}).values():
        if isinstance(asset, dict) and asset.get("href"):
            asset["href"] = fix(str(asset["href"]))
    links = []
    for link in d.get("links") or []:
        if link.get("rel") in _STRUCTURAL_RELS:
            continue
        if link.get("href"):
            link = {**link, "href": fix(str(link["href"]))}
        links.append(link)
    d["links"] = links
    return d


def _minimal_collection(cid: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid collection covering *items* (for items whose collection is not given)."""
    bboxes = [i["bbox"] for i in items if i.get("bbox")]
    if bboxes:
        bbox = [
            min(b[0] for b in bboxes),
            min(b[1] for b in bboxes),
            max(b[-2] for b in bboxes),
            max(b[-1] for b in bboxes),
        ]
    else:
        bbox = [-180.0, -90.0, 180.0, 90.0]
    times = sorted(
        t
        for i in items
        for t in (
            i.get("properties", {}).get("datetime"),
            i.get("properties", {}).get("start_datetime"),
            i.get("properties", {}).get("end_datetime"),
        )
        if t
    )
    interval = [times[0], times[-1]] if times else [None, None]
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"Collection {cid} (generated by s2cube.testing.stac_api)",
        "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "links": [],
    }


def _read_static(
    source: str | os.PathLike[str] | pystac.Catalog | Iterable[Mapping[str, Any] | pystac.STACObject],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Collections and items (as dicts, hrefs absolute) from a static catalog or a list."""
    import pystac

    objs: list[Any]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            path = path / "catalog.json"
        if not path.exists():
            raise FileNotFoundError(f"no STAC catalog at {path}")
        source = pystac.read_file(str(path.resolve()))
    if isinstance(source, pystac.Item):
        objs = [source]
    elif isinstance(source, pystac.Catalog):
        objs = []
        if isinstance(source, pystac.Collection):
            objs.append(source)
        objs.extend(source.get_all_collections())
        objs.extend(source.get_items(recursive=True))
    elif isinstance(source, Mapping):
        objs = [source]
    else:
        objs = list(source)

    collections: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    for obj in objs:
        kind = obj.get("type") if isinstance(obj, Mapping) else None
        if isinstance(obj, pystac.Collection) or kind == "Collection":
            d = _absolutize(_to_dict(obj), _self_href(obj))
            collections[d["id"]] = d
        elif isinstance(obj, pystac.Item) or kind == "Feature":
            d = _absolutize(_to_dict(obj), _self_href(obj))
            if not d.get("collection") and isinstance(obj, pystac.Item):
                parent = obj.get_collection()
                if parent is not None:
                    d["collection"] = parent.id
            items.append(d)
        elif isinstance(obj, pystac.Catalog):
            sub_c, sub_i = _read_static(obj)
            collections.update({c["id"]: c for c in sub_c})
            items.extend(sub_i)
        else:
            raise TypeError(f"cannot load {type(obj).__name__} {obj!r:.80} into a STAC API")

    for it in items:
        it.setdefault("collection", None)
        if not it["collection"]:
            it["collection"] = "items"
    for cid in sorted({it["collection"] for it in items} - set(collections)):
        collections[cid] = _minimal_collection(cid, [i for i in items if i["collection"] == cid])
    return list(collections.values()), items


def serve_catalog(
    catalog_path_or_items: str
    | os.PathLike[str]
    | pystac.Catalog
    | Iterable[Mapping[str, Any] | pystac.STACObject],
    **kw: Any,
) -> StacApiServer:
    """Start a :class:`StacApiServer` serving a static catalog.

    Every relative asset href is made absolute (a local file path, resolved
    against the item's own JSON file) before loading, so clients of the API
    can open the assets directly.

    Parameters
    ----------
    catalog_path_or_items : path, pystac.Catalog or list
        A ``catalog.json`` (or ``collection.json``, or a directory holding a
        ``catalog.json``), an opened :class:`pystac.Catalog`/``Collection``, or
        a list of items and collections (dicts or pystac objects). Items without
        a known collection get a generated one (their ``collection`` id, or
        ``"items"``). Dict items without a ``self`` link resolve relative hrefs
        against the current directory.
    **kw
        Passed to :class:`StacApiServer` (``port``, ``workdir``, ...).

    Returns
    -------
    StacApiServer
        The running server (use it as a context manager or call ``stop()``).
    """
    collections, items = _read_static(catalog_path_or_items)
    server = StacApiServer(**kw).start()
    try:
        server.load(collections, items)
    except BaseException:
        server.stop()
        raise
    return server
