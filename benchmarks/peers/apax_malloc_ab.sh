#!/usr/bin/env bash
# apax GMNN with glibc's default malloc and with the settings mlpot applies to itself
# (mlpot/hostmem.py; the README's GLIBC_TUNABLES line), beside our fast model, interleaved.
# Run from the repository root after benchmarks/peers/setup.sh apax:
#   OPENBLAS_NUM_THREADS=1 taskset -c 1 bash benchmarks/peers/apax_malloc_ab.sh [cases] [repeats]
set -euo pipefail
cd "$(dirname "$0")/../.."
cases=${1:-water:1536,cu:4000}
repeats=${2:-2}
tunables=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295
apax=benchmarks/peers/.venv-apax/bin/python
summary() { grep '^{' | python3 -c "import sys, json; [print(f\"  {r['system']} {r['atoms']}: {r.get('atom_steps_per_s', 0):,.0f} atom-steps/s\") for r in map(json.loads, sys.stdin)]"; }
for _ in $(seq "$repeats"); do
  echo "apax GMNN, glibc defaults"
  "$apax" benchmarks/peers/run_apax.py --cases "$cases" --block 20 --seconds 2 --limit 60 2>/dev/null | summary
  echo "apax GMNN, GLIBC_TUNABLES as mlpot sets them"
  GLIBC_TUNABLES=$tunables "$apax" benchmarks/peers/run_apax.py --cases "$cases" --block 20 --seconds 2 --limit 60 2>/dev/null | summary
  echo "mlpot painn-fast"
  .venv/bin/python benchmarks/peers/run_mlpot_md.py --cases "$cases" --block 20 --seconds 2 --limit 60 --model painn-fast 2>/dev/null | summary
done
