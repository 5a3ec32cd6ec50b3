#!/usr/bin/env bash
# Installs or upgrades Slipway's control plane or agent on a server, as a systemd service.
#
#   deploy/install.sh control-plane|agent [--from DIR] [--prefix /opt/slipway] [--etc /etc/slipway]
#                                         [--root /] [--no-start] [--keep 3]
#
# --from     a built checkout (npm ci && npm run build: node_modules and dist present); default: this one.
# --prefix   where releases go: <prefix>/releases/<version>-<time>, <prefix>/current → the newest.
# --etc      where the configuration goes (<role>.env, written once from deploy/<role>.env.example,
#            never overwritten: edit it, then `systemctl restart slipway-<role>`).
# --root     install under another root (images, tests); implies --no-start.
# --no-start lay out files and units only; no user, no systemctl.
# --keep     releases kept (the running one and those before it, for a quick way back).
#
# An upgrade is the same command with a newer build: a new release, `current` switched, the service
# restarted. The agent's unit stops only the agent (KillMode=process): its HAProxy keeps serving
# every environment while the new agent starts and adopts it; containers belong to dockerd.
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

role="${1:-}"
case "$role" in
  control-plane|agent) shift ;;
  -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "first argument: control-plane or agent (see --help)" ;;
esac

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
from="$(cd "$here/.." && pwd)"
prefix=/opt/slipway
etc=/etc/slipway
root=/
start=1
keep=3
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="$(cd "${2:?--from needs a directory}" && pwd)"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a path}"; shift 2 ;;
    --etc) etc="${2:?--etc needs a path}"; shift 2 ;;
    --root) root="${2:?--root needs a path}"; start=0; shift 2 ;;
    --no-start) start=0; shift ;;
    --keep) keep="${2:?--keep needs a number}"; shift 2 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case "$prefix$etc" in *[!A-Za-z0-9._/-]*) die "--prefix and --etc may only contain A-Z a-z 0-9 . _ / -" ;; esac
[[ "$prefix" == /* && "$etc" == /* ]] || die "--prefix and --etc must be absolute paths"
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || die "--keep must be a whole number of at least 1"

# What is installed must be a build: the entry point of the role and its dependencies.
main="apps/$role/dist/main.js"
[ -f "$from/$main" ] || die "$from has no $main: run 'npm ci && npm run build' there first"
[ -d "$from/node_modules" ] || die "$from has no node_modules: run 'npm ci' there first"
node="$(command -v node || true)"
[ -n "$node" ] || die "node is not installed (Node 20 or newer)"
major="$("$node" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || die "Node $major is too old: Slipway needs Node 20 or newer"
if [ "$start" = 1 ] && [ "$(id -u)" != 0 ]; then die "run as root (or with --no-start to lay out files only)"; fi

# The role's version, and the commit when the build is a git checkout.
version="$("$node" -p "require('$from/apps/$role/package.json').version")"
commit="$(git -C "$from" rev-parse --short=12 HEAD 2>/dev/null || true)"
[ -n "$commit" ] && version="$version+$commit"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
base="${root%/}$prefix"
release="$base/releases/$version-$stamp"
say "installing slipway $version ($role) into $release"
mkdir -p "$base/releases"
tmp="$release.partial"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
# The build, without the checkout's own state, VCS data, tests or local configuration. The
# dependencies are hard-linked when the build is on the same file system (fast, no extra space;
# npm replaces files rather than writing into them), else copied.
tar -C "$from" --exclude=./.git --exclude=./.slipway --exclude=./.turbo --exclude=./test --exclude=./node_modules -cf - . | tar -C "$tmp" -xf -
cp -al "$from/node_modules" "$tmp/node_modules" 2>/dev/null || { rm -rf "$tmp/node_modules"; cp -a "$from/node_modules" "$tmp/node_modules"; }
mv "$tmp" "$release"
# Switched in one rename, so `current` is never missing or half written.
ln -sfn "releases/$(basename "$release")" "$base/current.new"
mv -T "$base/current.new" "$base/current"

# Configuration: written once, then the operator's.
mkdir -p "${root%/}$etc"
envfile="${root%/}$etc/$role.env"
if [ ! -e "$envfile" ]; then
  install -m 0600 "$here/$role.env.example" "$envfile"
  say "wrote $etc/$role.env: edit it before the first start"
else
  say "kept $etc/$role.env"
fi

# The unit, with this installation's paths.
unitdir="${root%/}/etc/systemd/system"
mkdir -p "$unitdir"
sed -e "s#@PREFIX@#$prefix#g" -e "s#@ETC@#$etc#g" -e "s#@NODE@#$node#g" "$here/systemd/slipway-$role.service" > "$unitdir/slipway-$role.service.new"
mv "$unitdir/slipway-$role.service.new" "$unitdir/slipway-$role.service"

# Old releases beyond --keep go (never the current one).
current="$(readlink "$base/current")"
ls -1 "$base/releases" | grep -v '\.partial$' | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
  [ "releases/$old" = "$current" ] || rm -rf "${base:?}/releases/$old"
done

if [ "$start" = 0 ]; then
  say "files laid out; not started (--no-start/--root)"
  exit 0
fi
if [ "$role" = control-plane ] && ! id slipway >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/slipway --shell /usr/sbin/nologin slipway
fi
chmod 0640 "$envfile"
[ "$role" = control-plane ] && chgrp slipway "$envfile"
systemctl daemon-reload
if systemctl is-active --quiet "slipway-$role"; then
  systemctl restart "slipway-$role"
  say "upgraded: slipway-$role restarted on $version"
else
  systemctl enable --now "slipway-$role"
  say "slipway-$role enabled and started"
fi
