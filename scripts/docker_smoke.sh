#!/usr/bin/env bash
# Build the image and check it: the bot imports, migrations are packaged, it runs unprivileged, and
# the console (with the sandbox that ships in the package) answers a session.
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
session="$(printf 'schedule solapi +821012345678 in 2h hello\nlist\nquit\n' | docker run -i --rm "$tag" smsops console)"
if ! grep -q "Scheduled with Solapi" <<<"$session"; then
  echo "the console in the image did not schedule: $session" >&2
  exit 1
fi
echo "image $tag: imports ok, runs as uid $uid, console answers"
