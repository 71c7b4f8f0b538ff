#!/usr/bin/env bash
# Install the Debian packages the build, the tests and the demo need, but only the
# ones that are missing, so a second run costs one dpkg-query and nothing else.
set -euo pipefail

PACKAGES=(
  gcc pkg-config python3-dev python3-venv   # to build libvirt-python and make the venv
  libvirt-dev                               # libvirt-python links against libvirt (test:/// driver inside)
  smartmontools                             # real smartctl, for the version probe and the demo
  prometheus-node-exporter                  # the baseline of bench/agent_overhead.py
  systemd                                   # systemd-analyze for the unit tests
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$pkg")
done
# python3-dev / python3-venv are irrelevant when the interpreter is not Debian's (pyenv,
# a container image's own CPython): only ask for them when Debian's python3 is the one in use.
if [[ "$(command -v python3)" != /usr/bin/python3 ]]; then
  filtered=()
  for pkg in "${missing[@]}"; do
    [[ "$pkg" == python3-dev || "$pkg" == python3-venv ]] || filtered+=("$pkg")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing Debian packages: ${missing[*]}"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
