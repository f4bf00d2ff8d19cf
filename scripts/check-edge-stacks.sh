#!/usr/bin/env bash
# Runs the edge tests on the oldest versions pyproject.toml allows and on the numpy-1.x stack
# install.sh picks where the system's numpy is 1.x (Raspberry Pi OS Bookworm), each in a venv of
# its own under ${STACKS:-/tmp/yuzug-stacks}. CI runs the newest versions; this catches an API
# the older ones lack (cv2.utils.logging before OpenCV 4.12 was one). About 10 minutes.
#   scripts/check-edge-stacks.sh [floor|bookworm ...]
set -euo pipefail
cd "$(dirname "$0")/.."
root="${STACKS:-/tmp/yuzug-stacks}"
declare -A pins=(
    [floor]="opencv-python-headless==4.9.0.80 numpy==1.26.4 paho-mqtt==2.1.0 pydantic==2.6.4 ai-edge-litert==2.0.2"
    [bookworm]="numpy<2"
)
status=0
stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(floor bookworm)
for name in "${stacks[@]}"; do
    [ -n "${pins[$name]+set}" ] || { echo "check-edge-stacks: no stack $name (floor, bookworm)" >&2; exit 2; }
    venv="$root/$name"
    echo "== $name: ${pins[$name]}"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # the pins are separate requirements
    "$venv/bin/pip" install --quiet -e ".[edge,demo]" ${pins[$name]} pytest jsonschema jinja2 pyyaml
    "$venv/bin/pip" list 2>/dev/null | grep -i -E "^(numpy|opencv-python-headless|ai-edge-litert|paho-mqtt|pydantic) "
    # The label-swap test builds its model with TensorFlow, which these venvs leave out.
    # -W error::UserWarning: a warning at import is one every daemon start would print.
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -W error::UserWarning \
        tests/edge tests/contract -k "not other_labels" || status=1
done
exit $status
