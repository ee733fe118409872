"""TLS end to end: a PostgreSQL of its own with a self-signed certificate, reached with
`sslmode=verify-full` and `sslrootcert` by every client elt drives: psycopg2 (the CLI's
own connections), dlt (the raw load), connectorx (the shop source), dbt, and the doctor,
which reports the negotiated TLS version.

The embedded wheel is built without SSL, so the server is the machine's PostgreSQL
binaries (`/usr/lib/postgresql/*/bin`) on a data dir and port of the test's own; the
machine's own cluster is never touched."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import run_elt

from runtime import embedded
from runtime.errors import ConfigError
from runtime.warehouse import Warehouse, ensure_database, parse_url

PASSWORD = "tls-admin-pw-41d2"
SSL_BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or not SSL_BINARIES,
    reason="needs openssl and a PostgreSQL built with SSL (the embedded wheel's is not)",
)


def pg(name: str, *args: str, **run_as) -> None:
    binary = Path(SSL_BINARIES[-1]).with_name(name)
    subprocess.run([str(binary), *args], check=True, capture_output=True, timeout=120, **run_as)


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_server():
    """(admin warehouse with verify-full, path of the CA certificate)."""
    base = Path(tempfile.mkdtemp(prefix="elt-tls-"))
    run_as = embedded._run_as()
    data = base / "pgdata"
    data.mkdir()
    embedded._prepare_permissions(data)
    pwfile = base / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    pwfile.chmod(0o644)
    try:
        pg("initdb", "-D", str(data), "--auth=scram-sha-256", "-U", "postgres",
           f"--pwfile={pwfile}", "--no-locale", **run_as)  # fmt: skip
        cert, key = self_signed(base)
        for source in (cert, key):
            target = data / source.name
            shutil.copy(source, target)
            target.chmod(0o600)
            if run_as:
                os.chown(target, run_as["user"], run_as["group"])
        cert.chmod(0o644)
        port = embedded._free_port()
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
            " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
        )
        pg("pg_ctl", "-D", str(data), "-w", "-o", options, "-l", str(data / "server.log"), "start",
           **run_as)  # fmt: skip
        admin = Warehouse(
            host="127.0.0.1",
            port=port,
            user="postgres",
            password=PASSWORD,
            database="warehouse",
            sslmode="verify-full",
            sslrootcert=str(cert),
        )
        ensure_database(admin, "warehouse")
        ensure_database(admin, "shop")
        yield admin, cert
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            pg("pg_ctl", "-D", str(data), "-w", "-m", "immediate", "stop", **run_as)
        shutil.rmtree(base, ignore_errors=True)


def test_the_url_carries_sslmode_and_sslrootcert_to_every_client(tls_server):
    admin, cert = tls_server
    parsed = parse_url(admin.url)
    assert (parsed.sslmode, parsed.sslrootcert) == ("verify-full", str(cert))
    assert parsed.dbt_env()["ELT_WAREHOUSE_SSLROOTCERT"] == str(cert)
    conn = parsed.connect()
    try:
        assert conn.info.ssl_in_use and conn.info.ssl_attribute("protocol").startswith("TLS")
    finally:
        conn.close()


def test_verify_full_without_the_root_certificate_is_refused(tls_server):
    admin, _ = tls_server
    unknown = dataclasses.replace(admin, sslrootcert="/nonexistent/root.crt")
    with pytest.raises(ConfigError, match="cannot connect"):
        unknown.connect()


def test_load_transform_and_doctor_run_over_verified_tls(tls_server, tmp_path):
    from demo import marketing, shop

    admin, _ = tls_server
    shop_url = admin.url_for("shop")
    shop.seed(shop_url, 30)
    landing = tmp_path / "landing"
    marketing.seed(landing, shop_url)
    env = {
        "ELT_WAREHOUSE_URL": admin.url,
        "SOURCES__SHOP__CREDENTIALS": shop_url,  # connectorx, verify-full
        "SOURCES__MARKETING__BUCKET_URL": str(landing),
        "ELT_PIPELINES_DIR": str(tmp_path / "pipelines"),
    }
    run_elt("load", "shop", "marketing", env=env, check=True)  # dlt and connectorx
    # dbt; only the tests of this one model (others read models it does not build)
    transform = run_elt(
        "dbt", "--", "build", "-s", "stg_shop__orders", "--indirect-selection", "cautious", env=env
    )
    assert transform.returncode == 0, transform.stderr[-2000:]
    doctor = run_elt("doctor", "--only", "connectivity", "--format", "json", env=env)
    checks = {c["id"]: c for c in json.loads(doctor.stdout)["checks"]}
    facts = checks["connectivity/warehouse"]["facts"]
    assert facts["tls"] is True and facts["tls_version"].startswith("TLSv1.")
    assert facts["tls_version"] in checks["connectivity/warehouse"]["detail"]
