#!/bin/sh
# Debian's nginx for the load-balancer failover test (tests/scale, marker "nginx"); never a
# downloaded one. The test runs it as its own non-daemon child with a config in a temp dir, so the
# packaged service is not needed (and is not started where policy-rc.d forbids it).
set -eu
if [ -x /usr/sbin/nginx ]; then
    echo "nginx already installed: $(/usr/sbin/nginx -v 2>&1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nginx
/usr/sbin/nginx -v
