# syntax=docker/dockerfile:1
# smsops: `docker build -t smsops .` then `docker run --env-file .env smsops`.
# The image runs `python -m bot`, as `make run` does: it brings the database schema up to date, then
# runs the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT). /healthz, /metrics and
# /webhooks/telnyx are served on PORT in both modes. The local console with its simulated Slack and
# providers (bot/sandbox) is in the image too: `docker run -it --rm smsops smsops console`.

ARG PYTHON_VERSION=3.12

# --- build: install the project and its dependencies into a virtualenv -----------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY pyproject.toml README.md ./
RUN mkdir -p bot db && touch bot/__init__.py db/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes smsops
COPY bot ./bot
COPY db ./db
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import bot, db.migrate, bot.cli.console, bot.sandbox.harness"

# --- run: the virtualenv on a clean slim base, as an unprivileged user ------------------------------
FROM python:${PYTHON_VERSION}-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/smsops.db
RUN groupadd --system --gid 10001 smsops \
    && useradd --system --uid 10001 --gid smsops --home-dir /app --shell /usr/sbin/nologin smsops \
    && mkdir -p /app /data \
    && chown smsops:smsops /app /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
CMD ["python", "-m", "bot"]
