#!/usr/bin/env bash
# Installs what is missing, for the tests (default) or for training (`train`).
#   test:  the real services the tests run against: Mosquitto (MQTT broker), OpenSSH server
#          (deploy targets), Chromium (live view), openssl (a test CA for MQTT over TLS).
#   train: tcmalloc, which makes JAX's CPU epochs faster (`make train` preloads it).
# Needs root and apt; elsewhere it says what is missing (tests that need it skip).
set -euo pipefail

want=()
if [ "${1:-test}" = train ]; then
    ls /usr/lib/*/libtcmalloc_minimal.so.4 >/dev/null 2>&1 || want+=(libtcmalloc-minimal4)
else
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || want+=(mosquitto)
    [ -x /usr/sbin/sshd ] || want+=(openssh-server openssh-client)
    command -v chromium >/dev/null 2>&1 || want+=(chromium)
    command -v openssl >/dev/null 2>&1 || want+=(openssl)
fi

if [ ${#want[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${want[*]}; install them (Debian: apt-get install ${want[*]})" >&2
    exit 0
fi
echo "install-system-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# The packages' own services are not wanted: tests start their own on free loopback ports.
for service in mosquitto ssh; do
    (command -v systemctl >/dev/null && systemctl disable --now "$service" >/dev/null 2>&1) || true
done
