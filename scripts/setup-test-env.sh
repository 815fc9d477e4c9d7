#!/usr/bin/env bash
# Installs what the integration and end-to-end tests need on a fresh Debian
# machine: Debian's Chromium, ripgrep, podman (with podman-compose, for Compose dev
# containers), and a real VS Code (the one the
# code-server npm package ships), cached outside the repository.
# Every step is skipped when its result is already present.
set -euo pipefail

CACHE_DIR="${AGENT_LANES_CACHE:-$HOME/.cache/agent-lanes}"
CODE_SERVER_VERSION=4.100.3
CODE_SERVER_DIR="$CACHE_DIR/code-server-$CODE_SERVER_VERSION"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v rg >/dev/null || need_apt+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v podman-compose >/dev/null || need_apt+=(podman-compose)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# podman here needs runc (crun fails on cgroups hybrid mode) and no ulimits.
if [ ! -f /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' > /etc/containers/containers.conf
fi

if [ ! -x "$CODE_SERVER_DIR/node_modules/.bin/code-server" ]; then
  echo "setup: installing code-server $CODE_SERVER_VERSION into $CODE_SERVER_DIR"
  # @vscode/ripgrep's postinstall looks in this cache before downloading.
  rg_cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$rg_cache"
  tar -czf "$rg_cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
  tmp="$CODE_SERVER_DIR.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # npm 11 skips dependencies' install scripts unless allowed; code-server needs its
  # postinstall (it installs VS Code's native modules with a nested npm install).
  (cd "$tmp" && echo '{"name":"code-server-host","private":true}' > package.json \
    && npm_config_yes=true npm_config_dangerously_allow_all_scripts=true npm install --no-audit --no-fund --unsafe-perm "code-server@$CODE_SERVER_VERSION" >/dev/null)
  rm -rf "$CODE_SERVER_DIR" && mv "$tmp" "$CODE_SERVER_DIR"
fi
echo "setup: code-server at $CODE_SERVER_DIR"
