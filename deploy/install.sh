#!/usr/bin/env bash
# First-time set-up of a Raspberry Pi (Raspberry Pi OS Bookworm/Trixie, 64-bit) for YUZUG.
# Run as root on the Pi, from a folder holding this script, a yuzug wheel, edge.example.toml and
# yuzug-edge.service (yuzug-deploy install HOST copies them there and runs it):
#   sudo ./install.sh --wheel yuzug-*.whl [--password-file FILE] [--deploy-user USER]
# Idempotent: running it again upgrades the package and keeps an existing config.
# --deploy-user: who pushes models over ssh (default: the user who ran sudo, else root);
# --model-store-only: lay out the model store and stop (after changing the deploy user, say).
set -euo pipefail

WHEEL=""
PASSWORD_FILE=""
DEPLOY_USER="${SUDO_USER:-root}"
STORE_ONLY=""
PREFIX="${YUZUG_PREFIX:-/opt/yuzug}"
MODEL_STORE="${YUZUG_MODEL_STORE:-/var/lib/yuzug/models}"
here="$(cd "$(dirname "$0")" && pwd)"
example="$here/edge.example.toml"  # staged beside this script by yuzug-deploy install
[ -e "$example" ] || example="$here/../edge.example.toml"  # run from a checkout

# The example config with the model store (where yuzug-deploy push switches `current`) and this
# host's name as device_id filled in. `--print-config` prints it, so it can be checked anywhere.
device_config() {
    local device_id
    device_id="$(hostname -s | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_\n-' '-')"
    sed -e "s|^# model = \"$MODEL_STORE/current\".*|model = \"$MODEL_STORE/current\"|" \
        -e "s|^device_id = \"yuzug\"|device_id = \"$device_id\"|" \
        "$example"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) WHEEL="$2"; shift 2 ;;
        --password-file) PASSWORD_FILE="$2"; shift 2 ;;
        --deploy-user) DEPLOY_USER="$2"; shift 2 ;;
        --model-store-only) STORE_ONLY=1; shift ;;
        --print-config) device_config; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
id "$DEPLOY_USER" >/dev/null 2>&1 || { echo "install.sh: --deploy-user $DEPLOY_USER: no such user" >&2; exit 2; }

# The daemon reads the store as group yuzug; `yuzug-deploy push` writes it over ssh as the
# deploy user, who owns it (a store only root could write made every push by pi@... fail with
# "Permission denied"). setgid: what a push adds belongs to group yuzug too. Others see nothing.
model_store() {
    echo "== model store $MODEL_STORE (pushed to by $DEPLOY_USER, read by group yuzug)"
    install -d -o root -g root -m 0755 "$(dirname "$MODEL_STORE")"
    install -d -o "$DEPLOY_USER" -g yuzug -m 2750 "$MODEL_STORE"
    if [ ! -e "$MODEL_STORE/current" ]; then
        bundled="$("$PREFIX/venv/bin/python" -c 'from edge.models import default_bundle_path as p; print(p())')"
        version="$("$PREFIX/venv/bin/python" -c "from edge.bundle import load_bundle; print(load_bundle('$bundled').manifest.full_name)")"
        cp -r "$bundled" "$MODEL_STORE/$version"
        ln -sfn "$version" "$MODEL_STORE/current"
        sync # an SD card loses unflushed writes on a power cut; current must point at whole files
    fi
    chown -R "$DEPLOY_USER:yuzug" "$MODEL_STORE"
    chmod -R g+rX,g-w,o-rwx "$MODEL_STORE"
    chmod 2750 "$MODEL_STORE"
}
if [ -n "$STORE_ONLY" ]; then
    model_store
    exit 0
fi
[ -n "$WHEEL" ] || WHEEL="$(ls "$here"/yuzug-*.whl | head -n1)"

echo "== packages: python3-venv, python3-picamera2 (camera stack from apt)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3-venv python3-pip
# picamera2 exists only in Raspberry Pi OS's repository; elsewhere USB cameras still work.
apt-get install -y -qq python3-picamera2 || echo "python3-picamera2 not available: USB cameras only"

echo "== system user yuzug (groups video, render)"
id yuzug >/dev/null 2>&1 || useradd --system --home-dir /var/lib/yuzug --shell /usr/sbin/nologin yuzug
for group in video render; do
    getent group "$group" >/dev/null && usermod -a -G "$group" yuzug
done

echo "== venv $PREFIX/venv (--system-site-packages, so apt's picamera2 is visible)"
python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
# apt's camera stack (picamera2 -> simplejpeg) is built for the system's numpy. Where that is
# 1.x (Raspberry Pi OS Bookworm), a numpy 2 in the venv breaks `import picamera2` ("numpy.dtype
# size changed"), so the venv stays on 1.x there (numpy 1.26, OpenCV 4.11, LiteRT 2.3).
numpy_pin=""
if python3 -c 'import numpy, sys; sys.exit(numpy.__version__.split(".")[0] != "1")' 2>/dev/null; then
    numpy_pin="numpy<2"
    echo "system numpy is 1.x: keeping the venv on numpy<2 for apt's picamera2"
fi
"$PREFIX/venv/bin/pip" install --quiet "${WHEEL}[edge]" ${numpy_pin:+"$numpy_pin"}
# Every build is version 0.1.0, and pip keeps an installed version it is given again ("already
# installed with the same version"): without this a second install left the old code running.
"$PREFIX/venv/bin/pip" install --quiet --force-reinstall --no-deps "$WHEEL"

model_store

echo "== config /etc/yuzug/edge.toml"
install -d -m 0755 /etc/yuzug
if [ ! -e /etc/yuzug/edge.toml ]; then
    device_config > /etc/yuzug/edge.toml
    # Without this line the daemon would run the model inside the package, and no push would
    # ever reach it.
    grep -q "^model = \"$MODEL_STORE/current\"" /etc/yuzug/edge.toml
fi
chmod 0644 /etc/yuzug/edge.toml

echo "== secrets as systemd credentials (empty: none)"
if [ -n "$PASSWORD_FILE" ]; then
    install -m 0600 -o root -g root "$PASSWORD_FILE" /etc/yuzug/mqtt_password
fi
# The unit loads each one, and a missing file would stop it from starting.
for credential in mqtt_password http_token http_password; do
    [ -e "/etc/yuzug/$credential" ] || install -m 0600 -o root -g root /dev/null "/etc/yuzug/$credential"
done

echo "== service"
install -m 0644 "$here/yuzug-edge.service" /etc/systemd/system/yuzug-edge.service
# With the credential the unit loads, so that what the service would refuse is refused here.
CREDENTIALS_DIRECTORY=/etc/yuzug "$PREFIX/venv/bin/yuzug-edge" validate-config \
    --config /etc/yuzug/edge.toml >/dev/null
systemctl daemon-reload
systemctl enable yuzug-edge
# restart, not start: on a re-install the running daemon would keep the old code and unit.
systemctl restart yuzug-edge
systemctl --no-pager --lines=0 status yuzug-edge || true
echo "installed: edit /etc/yuzug/edge.toml (mqtt.host, camera) and: systemctl restart yuzug-edge"
echo "  (or from your workstation: yuzug-deploy config HOST --set mqtt.host=... --set-secret mqtt.password)"
echo "if it does nothing: yuzug-deploy doctor HOST from your workstation, or here: systemctl stop yuzug-edge; CREDENTIALS_DIRECTORY=/etc/yuzug STATE_DIRECTORY=/var/lib/yuzug-edge $PREFIX/venv/bin/yuzug-edge doctor --config /etc/yuzug/edge.toml"
