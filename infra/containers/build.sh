#!/usr/bin/env bash
# Builds the Bifrost image with podman (`make image`): the base first when missing (base.sh).
#   infra/containers/build.sh [TAG]        default localhost/bifrost:latest
# On these sandboxed machines podman needs runc (crun refuses the kernel's hybrid cgroups) and
# resource limits no higher than the host's (the defaults are, and setting them is refused);
# both are passed here, harmless elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-localhost/bifrost:latest}
base=localhost/bifrost-base:bookworm
podman image exists "$base" || infra/containers/base.sh "$base"
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt)
podman build --format docker --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --network host "${secret[@]}" --build-arg BASE="$base" \
    -f infra/containers/Dockerfile -t "$tag" .
