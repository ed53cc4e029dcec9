#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs every Debian 12 package that building, testing and running MANAS360 needs.
# Safe to run again: packages already present are left alone.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git ca-certificates
    clang-format clang-tidy
    libcivetweb-dev libpq-dev libzmq3-dev libczmq-dev libjwt-dev libsodium-dev
    libjansson-dev libncurses-dev libcriterion-dev libcurl4-openssl-dev libcrypt-dev libssl-dev
    postgresql-15 postgresql-client-15
    python3 python3-aiosmtpd curl wrk tmux util-linux
    vagrant
)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "bootstrap: all ${#packages[@]} packages present"
    exit 0
fi

echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -q
as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
