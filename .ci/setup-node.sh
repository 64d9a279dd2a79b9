#!/bin/sh
# Node for web/ (the CodeMirror 6 extension and the ProseMirror plugin): Debian's nodejs and npm,
# only when node or npm is missing (a machine with another node, e.g. nodesource's, keeps it:
# Debian's npm package conflicts with it), then the bundles the server ships
# (server/static/bundles/, server/static/client.js) rebuilt from the lockfile, so that
# tests/test_web_bundles.py checks the committed ones against a build made here.
set -eu
cd "$(dirname "$0")/../web"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    echo "node already installed: $(node --version), npm $(npm --version)"
else
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nodejs npm
    node --version
fi
npm ci --no-audit --no-fund
npm run build
