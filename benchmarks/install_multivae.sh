#!/usr/bin/env bash
# Install the multivae baseline (PyPI 1.0.3) without letting pip replace torch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python -m pip install "multivae==1.0.3" -c "$here/constraints-multivae.txt"
