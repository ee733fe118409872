"""The embedded warehouse as a hostile local user meets it: a password for every
connection, a password nobody else can read, a server without root's group, private
files, and an older trust-everyone data directory secured on start."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest

from runtime import embedded

PROJECT = Path(__file__).resolve().parents[2]
PSQL = embedded._wheel().POSTGRES_BIN_PATH / "psql"
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="creating a throwaway system user needs root"
)


@contextlib.contextmanager
def throwaway_user():
    """A system user of its own group, removed afterwards."""
    name = f"eltprobe{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        import pwd

        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def as_user(entry, args: list[str], env: dict[str, str] | None = None):
    return subprocess.run(
        args,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def psql(port: int, user: str, password: str | None = None):
    env = {"PGPASSWORD": password} if password is not None else {}
    args = [str(PSQL), "-w", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres"]
    return [*args, "-Atc", "select current_user"], env


@needs_root
def test_another_local_user_can_neither_connect_nor_read_the_password(server):
    home = embedded.home(PROJECT)
    with throwaway_user() as other:
        for role in ("postgres", "elt_loader", "elt_analyst"):
            for password in (None, "", "postgres"):
                args, env = psql(server.port, role, password)
                result = as_user(other, args, env)
                assert result.returncode != 0, (role, password, result.stdout)
                assert "password" in result.stderr, result.stderr
        read = as_user(other, ["cat", str(home / embedded.CREDENTIALS_FILE)])
        assert read.returncode != 0 and "Permission denied" in read.stderr
        listing = as_user(other, ["ls", str(home)])
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
        log = as_user(other, ["cat", str(embedded.log_file(PROJECT))])
        assert log.returncode != 0
    # the owner, with the password on file, does connect
    args, env = psql(server.port, "postgres", embedded.password(PROJECT))
    mine = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True)
    assert mine.stdout.strip() == "postgres", mine.stderr


def test_a_connection_without_the_password_is_refused(server):
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host="127.0.0.1", port=server.port, user="postgres", password="x", dbname="postgres"
        )


def test_pg_hba_trusts_nobody_and_the_files_are_private(server):
    home, data = embedded.home(PROJECT), embedded.pgdata(PROJECT)
    hba = [line.split() for line in (data / "pg_hba.conf").read_text().splitlines()]
    methods = {fields[-1] for fields in hba if fields and not fields[0].startswith("#")}
    assert methods == {"scram-sha-256"}
    assert (home / embedded.CREDENTIALS_FILE).stat().st_mode & 0o777 == 0o600
    assert embedded.log_file(PROJECT).stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    assert home.stat().st_mode & 0o077 in (0, 0o011)  # others may enter, never list or read


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user only when started as root")
def test_the_server_runs_as_an_unprivileged_user_without_group_zero(server):
    pid = (embedded.pgdata(PROJECT) / "postmaster.pid").read_text().split()[0]
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    uids, gids = status["Uid"].split(), status["Gid"].split()
    groups = status["Groups"].split()
    assert "0" not in uids and "0" not in gids, status
    assert "0" not in groups, f"supplementary groups {groups}"


def test_a_trust_data_dir_from_an_older_elt_is_secured_on_start(monkeypatch):
    """An older elt initialised `.elt/pgdata` with trust and left it running: the next
    command stops it, sets a password with no network open, rewrites pg_hba, restarts;
    the data stays."""
    home = Path(tempfile.mkdtemp(prefix="elt-old-home-"))
    monkeypatch.setenv(embedded.HOME_ENV, str(home))
    commands, run_as = embedded._wheel(), embedded._run_as()
    data = embedded.pgdata(PROJECT)
    data.mkdir(parents=True)
    embedded._prepare_permissions(data)
    port = embedded._free_port()
    try:
        commands.initdb(["--auth=trust", "-U", "postgres", "--no-locale"], pgdata=data, **run_as)
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        commands.pg_ctl(["-w", "-o", options, "start"], pgdata=data, timeout=90, **run_as)
        trusted = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        trusted.autocommit = True
        with trusted.cursor() as cur:
            cur.execute("create table kept as select 42 as answer")
        trusted.close()

        started = embedded.ensure_running(PROJECT)

        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host="127.0.0.1", port=started, user="postgres", dbname="postgres")
        secret = embedded.password(PROJECT)
        conn = psycopg2.connect(
            host="127.0.0.1", port=started, user="postgres", password=secret, dbname="postgres"
        )
        with conn.cursor() as cur:
            cur.execute("select answer from kept")
            assert cur.fetchone() == (42,)
        conn.close()
        assert "trust" not in (data / "pg_hba.conf").read_text().split("\n", 1)[1]
        assert embedded.ensure_running(PROJECT) == started  # secured: left running as is
    finally:
        with contextlib.suppress(Exception):
            embedded.stop(PROJECT)
        if embedded.port(PROJECT) is not None:
            commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, **run_as)
        shutil.rmtree(home, ignore_errors=True)
