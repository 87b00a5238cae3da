#!/usr/bin/env bash
# Makes the base image localhost/bifrost-base:bookworm from Debian's own packages (mmdebstrap),
# for machines that reach Debian's archive but no image registry. Needs root, mmdebstrap, podman.
set -euo pipefail
image=${1:-localhost/bifrost-base:bookworm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# minbase: dpkg, apt, coreutils, passwd (useradd); python3 for the venv, libpq5 for psycopg's
# non-binary fallback, ca-certificates for TLS to S3 and the database.
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,libpq5 \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm "$work/rootfs.tar"
podman import --change 'CMD ["/bin/bash"]' "$work/rootfs.tar" "$image"
