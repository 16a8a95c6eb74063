#!/usr/bin/env bash
# Install everything a development checkout, CI and the VM test bed need on a Debian 12 host.
# Idempotent; safe to run again. Run as root (or with sudo).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${BOOTAGENT_VENV:-$here/.venv}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# OpenZFS userland (python3-pyzfs) lives in Debian's contrib component; the test bed uses the
# newer OpenZFS from bookworm-backports (it builds for both guest kernels).
sources=/etc/apt/sources.list.d/bootagent-contrib.sources
if [ ! -f "$sources" ]; then
    as_root tee "$sources" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    stamp_update=1
fi

pkgs=(
    # the product's runtime, as an installed system has it
    python3 python3-venv python3-yaml python3-pyudev python3-blessed
    # the test bed
    qemu-system-x86 qemu-utils debootstrap grub-pc-bin grub2-common grub-emu gdisk e2fsprogs
    dpkg-dev fakeroot zstd cpio util-linux kmod
)
missing=()
for p in "${pkgs[@]}" python3-pyzfs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    # --no-install-recommends: otherwise zfsutils-linux pulls zfs-dkms and compiles modules for nothing.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -t bookworm-backports python3-pyzfs
fi

# A venv on Debian's own interpreter, seeing Debian's python3-* packages (pyzfs is not on PyPI).
if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements-dev.txt"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$here"

# --- tests only: PyPI's blessed beside Debian's -----------------------------------------------------------
# The boot menu must work with Debian's python3-blessed 1.19 (what the initramfs has) AND PyPI's blessed
# (pure Python, queries the terminal): tests/unit/tui runs its pty tests under both, putting this directory
# first on the child's PYTHONPATH. Never on the venv's own path. Bump the pin deliberately.
BLESSED_PYPI=1.52.0
if [ ! -f "$VENV/blessed-pypi/blessed-$BLESSED_PYPI.dist-info/METADATA" ]; then
    rm -rf "$VENV/blessed-pypi"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --target "$VENV/blessed-pypi" \
        "blessed==$BLESSED_PYPI"
fi
echo "setup-host: ready (venv: $VENV)"
