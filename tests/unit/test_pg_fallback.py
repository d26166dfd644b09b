"""`make test` on a machine with no PostgreSQL: the run starts a throwaway server and removes it again."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_a_dead_address_gets_a_throwaway_server_that_is_gone_afterwards(tmp_path: Path) -> None:
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
    env = {**os.environ, "SMSOPS_TEST_PG": "postgresql://postgres@127.0.0.1:9/test", "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["URL"].startswith("postgresql://postgres@127.0.0.1:") and ":9/" not in lines["URL"]
    assert lines["COLLATION"]
    # the server was stopped and its files deleted when the process ended
    assert not Path(lines["DATADIR"]).exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if lines["DATADIR"] in " ".join(p.info["cmdline"] or [])]
