"""A throwaway PostgreSQL/PostGIS cluster on 127.0.0.1 for the test STAC API.

This module owns finding a PostgreSQL server installation with PostGIS
(:func:`find_postgres`) and running a private cluster of it in a temporary directory
(:class:`PostgresCluster`): ``initdb``, ``pg_ctl start``/``stop``, one database with PostGIS.
The cluster trades durability for speed (no fsync) because it lives for one test run.

Binaries are found with ``$S2CUBE_PG_BINDIR``, ``pg_config --bindir``, ``initdb`` on ``PATH``
or ``/usr/lib/postgresql/*/bin``.  PostgreSQL refuses to run as root; when the current process
is root the cluster is created and run as the ``postgres`` system user (``runuser`` or
``setpriv``), otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from s2cube.errors import S2CubeError

__all__ = [
    "INSTALL_SYSTEM_HINT",
    "PgInstall",
    "PostgresCluster",
    "StacApiError",
    "find_postgres",
    "free_port",
    "is_root",
    "log_tail",
    "root_user_problem",
]

INSTALL_SYSTEM_HINT = "bash .ci/install_system.sh"

DB_USER = "postgres"
OS_DB_USER = "postgres"  # OS account that runs PostgreSQL when we are root


class StacApiError(S2CubeError, RuntimeError):
    """The test STAC API cannot start or run (missing PostgreSQL/PostGIS/packages, a failed step).

    A :class:`RuntimeError`; the message names what to install or includes the failing log's tail.
    """


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class PgInstall:
    """Location of a PostgreSQL server installation (``sharedir`` None: PostGIS unknown)."""

    bindir: Path
    sharedir: Path | None

    def exe(self, name: str) -> str:
        return str(self.bindir / name)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, n: int = 4000) -> str:
    """The last ``n`` bytes of a log, for error messages."""
    try:
        data = path.read_bytes()
    except OSError:
        return "<no log>"
    return data[-n:].decode("utf-8", "replace")


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
    return list(dict.fromkeys(out))  # first occurrence wins: keeps the preference order


def _sharedir(bindir: Path) -> Path | None:
    """The ``share`` directory (holding ``extension/``) of the installation in *bindir*."""
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            res = subprocess.run(
                [str(pg_config), "--sharedir"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
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


def find_postgres() -> PgInstall:
    """Find a PostgreSQL server installation, preferring one with PostGIS.

    Raises
    ------
    StacApiError
        If no server binaries or no PostGIS extension are found.
    """
    servers = [
        d
        for d in _candidate_bindirs()
        if all((d / n).exists() for n in ("initdb", "pg_ctl", "postgres"))
    ]
    if not servers:
        where = (
            os.environ.get("S2CUBE_PG_BINDIR")
            or "pg_config --bindir, PATH, /usr/lib/postgresql/*/bin"
        )
        raise StacApiError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
            f"(looked in {where}). Install PostgreSQL and PostGIS with `{INSTALL_SYSTEM_HINT}` "
            "(Debian: apt-get install postgresql postgresql-<major>-postgis-3) "
            "or point $S2CUBE_PG_BINDIR at the bin directory."
        )
    unknown: PgInstall | None = None
    for d in servers:
        share = _sharedir(d)
        if share is None:
            unknown = unknown or PgInstall(d, None)
            continue
        if (share / "extension" / "postgis.control").exists():
            return PgInstall(d, share)
    if unknown is not None:  # cannot tell; CREATE EXTENSION will say
        return unknown
    raise StacApiError(
        f"PostGIS is not installed for the PostgreSQL server in {servers[0]}. "
        f"Install it with `{INSTALL_SYSTEM_HINT}` "
        f"(Debian: apt-get install postgresql-{servers[0].parent.name}-postgis-3)."
    )


def root_user_problem() -> str | None:
    """Why PostgreSQL cannot run here as root (no ``postgres`` OS user), or None."""
    if not is_root():
        return None
    import pwd

    try:
        pwd.getpwnam(OS_DB_USER)
    except KeyError:
        return (
            f"running as root needs a '{OS_DB_USER}' system user to run PostgreSQL "
            f"(created by the Debian postgresql package: `{INSTALL_SYSTEM_HINT}`)."
        )
    return None


# --------------------------------------------------------------------------- cluster


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only.

    Parameters
    ----------
    workdir : str or os.PathLike, optional
        Directory in which the temporary directory (cluster and logs) is created. Default: the
        system temp dir. When running as root it must be reachable by the ``postgres`` OS user.
    startup_timeout : float, default 90
        Seconds to wait for each of ``initdb`` and ``pg_ctl start``.

    Examples
    --------
    >>> pg = PostgresCluster().start()  # doctest: +SKIP
    >>> pg.create_database("pgstac", extensions=("postgis",))  # doctest: +SKIP
    >>> pg.stop()  # doctest: +SKIP
    """

    def __init__(
        self, *, workdir: str | os.PathLike[str] | None = None, startup_timeout: float = 90.0
    ) -> None:
        self._workdir = Path(workdir) if workdir is not None else None
        self.startup_timeout = float(startup_timeout)
        self.password = secrets.token_hex(16)
        self.install: PgInstall | None = None
        self.port: int | None = None
        self.running = False
        self.tmpdir: Path | None = None

    def dsn(self, database: str) -> str:
        """libpq connection string of ``database`` as the superuser."""
        if self.port is None or not self.running:
            raise StacApiError("the PostgreSQL cluster is not running; call start() first")
        return (
            f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"
            "?sslmode=disable"
        )

    def start(self) -> PostgresCluster:
        """Find PostgreSQL, create the cluster in a new temporary directory and start it.

        Raises
        ------
        StacApiError
            If PostgreSQL or (as root) the ``postgres`` OS user is missing, or a step fails.
        """
        self.install = find_postgres()
        if is_root():
            import pwd

            try:
                pwd.getpwnam(OS_DB_USER)
            except KeyError:
                raise StacApiError(
                    f"running as root needs a '{OS_DB_USER}' OS user to run PostgreSQL; "
                    f"`{INSTALL_SYSTEM_HINT}` creates it"
                ) from None
        self.tmpdir = self._make_tmpdir()
        self._init_cluster()
        self._start_postgres()
        return self

    def create_database(self, name: str, *, extensions: tuple[str, ...] = ()) -> None:
        """Create database ``name`` with ``extensions`` installed (PostGIS gets a clear error)."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn(name), autocommit=True, connect_timeout=10) as conn:
            for ext in extensions:
                try:
                    conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
                except psycopg.Error as exc:
                    if ext != "postgis":
                        raise
                    where = self.install.bindir if self.install else "?"
                    raise StacApiError(
                        f"CREATE EXTENSION postgis failed ({exc}). Install PostGIS for the "
                        f"PostgreSQL in {where} with `{INSTALL_SYSTEM_HINT}`."
                    ) from exc

    def stop(self) -> None:
        """Stop PostgreSQL and delete the temporary directory. Idempotent."""
        if self.running and self.tmpdir is not None and self.install is not None:
            self.running = False
            pg_ctl = self.install.exe("pg_ctl")
            for mode in ("fast", "immediate"):
                try:
                    cmd = [pg_ctl, "-D", str(self.tmpdir / "pgdata"), "-m", mode, "-w", "stop"]
                    self._run_pg(cmd, "pg_ctl stop", timeout=60)
                    break
                except (StacApiError, subprocess.TimeoutExpired):
                    continue
        self.port = None
        tmp, self.tmpdir = self.tmpdir, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    # ---------------------------------------------------------------- steps
    def _as_db_user(self, cmd: list[str]) -> list[str]:
        """Wrap *cmd* to run as the ``postgres`` OS user when we are root."""
        if not is_root():
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", OS_DB_USER, "--", *cmd]
        if shutil.which("setpriv"):
            import pwd

            pw = pwd.getpwnam(OS_DB_USER)
            ids = [f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]
            return ["setpriv", *ids, "--", *cmd]
        raise StacApiError(
            "running as root, but neither `runuser` nor `setpriv` (util-linux) is available "
            "to run PostgreSQL as the 'postgres' user"
        )

    def _run_pg(
        self, cmd: list[str], what: str, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        assert self.tmpdir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        res = subprocess.run(
            self._as_db_user(cmd),
            cwd=self.tmpdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if res.returncode != 0:
            log = log_tail(self.tmpdir / "postgres.log")
            raise StacApiError(
                f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n"
                f"stdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}\n"
                f"postgres.log tail:\n{log}"
            )
        return res

    def _make_tmpdir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="s2cube-stacapi-", dir=self._workdir))
        pwfile = tmp / "pwfile"
        pwfile.write_text(self.password + "\n")
        if is_root():
            import pwd

            pw = pwd.getpwnam(OS_DB_USER)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            os.chmod(tmp, 0o700)
            os.chmod(pwfile, 0o600)
            probe = subprocess.run(self._as_db_user(["test", "-w", str(tmp)]), capture_output=True)
            if probe.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StacApiError(
                    f"the '{OS_DB_USER}' OS user cannot write to {tmp}; pass a workdir it can "
                    "reach (every parent directory must be traversable), e.g. one under /tmp"
                )
        return tmp

    def _init_cluster(self) -> None:
        assert self.tmpdir is not None and self.install is not None
        pgdata = self.tmpdir / "pgdata"
        cmd = [self.install.exe("initdb"), "-D", str(pgdata), "-U", DB_USER]
        cmd += [f"--pwfile={self.tmpdir / 'pwfile'}", "--auth-local=trust"]
        cmd += ["--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"]
        self._run_pg(cmd, "initdb", timeout=self.startup_timeout)
        conf = (
            "\n# --- s2cube test STAC API: throwaway, speed over durability ---\n"
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
        assert self.tmpdir is not None and self.install is not None
        last: Exception | None = None
        for _ in range(3):
            port = free_port()
            cmd = [self.install.exe("pg_ctl"), "-D", str(self.tmpdir / "pgdata")]
            cmd += ["-l", str(self.tmpdir / "postgres.log"), "-o", f"-p {port}"]
            cmd += ["-w", "-t", str(int(self.startup_timeout)), "start"]
            try:
                self._run_pg(cmd, "pg_ctl start", timeout=self.startup_timeout + 10)
            except StacApiError as exc:  # most likely a port race with another process
                last = exc
                continue
            self.port = port
            self.running = True
            return
        raise StacApiError(f"could not start PostgreSQL: {last}")
