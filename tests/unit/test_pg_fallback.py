"""`make test` on a machine with no PostgreSQL: the run starts a throwaway server and removes it again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_a_dead_address_gets_a_throwaway_server_that_is_gone_afterwards() -> None:
    script = textwrap.dedent("""
        import psycopg
        from tests.support import pg
        url = pg.admin_url()
        print("URL", url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "probe" {pg.create_options()}')
            print("DATADIR", conn.execute("SHOW data_directory").fetchone()[0])
        print("COLLATION", pg.collation_summary())
    """)
    # Its own temporary directory outside pytest's: the server runs as an unprivileged user, who must be able
    # to reach it, and another pytest session may tighten /tmp/pytest-of-<user> at any moment.
    own_tmp = tempfile.mkdtemp(prefix="smsops-pg-fallback-")
    env = {**os.environ, "SMSOPS_TEST_PG": "postgresql://postgres@127.0.0.1:9/test", "TMPDIR": own_tmp}
    try:
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=90)
        assert done.returncode == 0, done.stderr
        lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
        assert lines["URL"].startswith("postgresql://postgres@127.0.0.1:") and ":9/" not in lines["URL"]
        assert lines["COLLATION"]
        # the server was stopped and its files deleted when the process ended
        assert not Path(lines["DATADIR"]).exists()
        assert not [p for p in psutil.process_iter(["cmdline"])
                    if lines["DATADIR"] in " ".join(p.info["cmdline"] or [])]
    finally:
        shutil.rmtree(own_tmp, ignore_errors=True)
