#!/usr/bin/env bash
# One line naming the machine a bench ran on, so that figures from
# different machines are never compared blind: CPU model, cores, whether
# the CPU has the SHA extensions (SHA-NI), the kernel, OpenSSL's version.
set -euo pipefail
model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
sha=no
grep -qw sha_ni /proc/cpuinfo && sha=yes
ossl=$(openssl version 2>/dev/null | cut -d' ' -f1-2 || echo "no openssl")
echo "machine: ${model:-unknown CPU}, $(nproc) cores, SHA-NI $sha, kernel $(uname -r), $ossl"
