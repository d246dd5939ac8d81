#!/usr/bin/env bash
# Build a release of the postback appliance on the control machine: copy the sources into a staging
# directory (so the checkout's node_modules is never touched), `npm ci` and `npm run build` there, and
# pack what a server needs (dist/, package.json, package-lock.json, pm2.config.cjs, and docs/ so the
# runbooks monit's alerts name are on the server) into a tarball named
# after a hash of the sources. A tarball that already exists for the same sources is reused, so a
# second run builds nothing and the release id stays the same (idempotent deploys).
#   build-release.sh <repository> <cache dir>   ->  prints {"id": "...", "tarball": "..."}
set -euo pipefail
repo=$(cd "$1" && pwd)
cache=$2
mkdir -p "$cache"
cd "$repo"
files=(package.json package-lock.json tsconfig.json tsconfig.build.json pm2.config.cjs)
for optional in docs; do [ -e "$optional" ] && files+=("$optional"); done
id=$( { find src "${files[@]}" -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-12)
tarball="$cache/postback-$id.tar.gz"
if [ ! -s "$tarball" ]; then
  stage=$(mktemp -d "$cache/stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  cp -a src "${files[@]}" "$stage/"
  (cd "$stage" && npm ci --no-audit --no-fund --loglevel=error >&2 && npm run build --silent >&2)
  tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -czf "$tarball.tmp" dist package.json package-lock.json pm2.config.cjs $( [ -d docs ] && echo docs)
  mv "$tarball.tmp" "$tarball"
fi
printf '{"id": "%s", "tarball": "%s"}\n' "$id" "$tarball"
