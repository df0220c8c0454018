#!/usr/bin/env bash
# Build a local Debian bookworm base image (Python 3.11 with venv) from Debian packages, for hosts
# that can reach a Debian mirror but no container registry.  Usage:
#   sudo bash docker/make-base.sh [IMAGE]        (default IMAGE: localhost/mlphys-base:bookworm)
# then build with --build-arg BASE=IMAGE.  Needs root, debootstrap and podman (or docker).
set -euo pipefail
image="${1:-localhost/mlphys-base:bookworm}"
engine="${ENGINE:-$(command -v podman || command -v docker)}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d /var/tmp/mlphys-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
# The same sources a Debian image carries: the release, its updates and security fixes.
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# A small image: no package lists, caches or documentation.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | "$engine" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "$image"
