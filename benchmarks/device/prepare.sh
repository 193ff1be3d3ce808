#!/usr/bin/env bash
# Here, before using a lent GPU machine: what benchmarks/device/gpu.sh needs there,
# which cannot reach the network and takes 64 MiB per call (the working tree included).
#   bash benchmarks/device/prepare.sh [ESC-10 or ESC-50 root]
# Writes .whl/ (the audio packages its image lacks, for its Python 3.12; ~2 MB),
# .device/minilm/ (all-MiniLM-L6-v2 less its unused token embeddings; 44 MB) and the three
# seeds' feature caches of step 13 (data/preprocessed/esc10-seed{0,1,2}.pt, 19 MB each;
# the same files step 13 builds and uses here).
set -euo pipefail
DATA=${1:-data/ESC-10}
PY=${PYTHON:-python}
PKGS="librosa soxr soundfile cffi pycparser audioread decorator pooch platformdirs"
# shellcheck disable=SC2086
PINS=$($PY -c "import importlib.metadata as m, sys; print(' '.join(f'{p}=={m.version(p)}' for p in sys.argv[1:]))" $PKGS)
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $PINS
$PY benchmarks/device/pack_minilm.py .device/minilm
for SEED in 0 1 2; do
  $PY -m audiogpt2 preprocess --data "$DATA" --subset esc10 --cache "data/preprocessed/esc10-seed$SEED.pt" --seed "$SEED"
done
du -sh .whl .device data/preprocessed/esc10-seed*.pt
