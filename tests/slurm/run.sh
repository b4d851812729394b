#!/usr/bin/env bash
# SLURM integration tests on a real single-node cluster (tests/slurm/cluster.sh). Needs root the
# first time (installs Debian's slurm-wlm packages when they are missing). `make test-slurm` runs this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash tests/slurm/smoke.sh
bash tests/slurm/train.sh
