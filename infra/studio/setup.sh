#!/usr/bin/env bash
# Prepares the studio stack (compose.yaml): random passwords in infra/studio/.env and a
# self-signed TLS certificate for the gateway in infra/studio/certs/ (replace it with a real one:
# gateway.pem holds the key and the certificate). Existing files are kept.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
if [ ! -s .env ]; then
    for name in DB_ADMIN DB_MIGRATOR DB_API DB_WORKER DB_READER DB_PREFECT DB_REPLICATION REDIS S3; do
        echo "${name}_PASSWORD=$(openssl rand -hex 24)"
    done > .env
    echo "wrote $(pwd)/.env"
fi
mkdir -p certs
if [ ! -s certs/gateway.pem ]; then
    host=${1:-$(hostname -f)}
    openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes -subj "/CN=$host" \
        -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" \
        -keyout certs/key.pem -out certs/cert.pem 2>/dev/null
    cat certs/key.pem certs/cert.pem > certs/gateway.pem
    rm certs/key.pem
    # HAProxy in its container runs as an unprivileged user and reads the certificate.
    chmod 644 certs/gateway.pem certs/cert.pem
    echo "wrote $(pwd)/certs/gateway.pem (self-signed for $host)"
fi
