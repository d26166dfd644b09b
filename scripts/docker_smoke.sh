#!/usr/bin/env bash
# Build the image and check it: the bot imports, migrations are packaged, it runs unprivileged.
# Needs a Docker daemon, which CI does not have; run it before publishing an image.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-smsops:smoke}"
docker build -t "$tag" .
docker run --rm "$tag" python -c "import bot, db.migrate; print('imports ok')"
uid="$(docker run --rm "$tag" id -u)"
if [ -z "$uid" ] || [ "$uid" = "0" ]; then
  echo "the image runs as root (uid '$uid')" >&2
  exit 1
fi
echo "image $tag: imports ok, runs as uid $uid"
