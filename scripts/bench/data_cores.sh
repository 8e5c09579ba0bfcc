#!/usr/bin/env bash
# `vibeflow bench data --vs-peer` on the first N cores, for each N given (Linux: taskset).
# Both sides are limited to those cores; ours uses N rayon threads.
#   scripts/bench/data_cores.sh [-b path/to/vibeflow] [-m model] N...   (default: 2 4 8 16)
set -euo pipefail
bin=vibeflow model=smollm2-135m-instruct
while getopts b:m: opt; do
  case $opt in
    b) bin=$OPTARG ;;
    m) model=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- 2 4 8 16
for n in "$@"; do
  if [ "$n" -gt "$(nproc)" ]; then echo "skipped: $n cores (this machine has $(nproc))"; continue; fi
  echo "== $n cores"
  RAYON_NUM_THREADS=$n taskset -c "0-$((n - 1))" "$bin" bench data --model "$model" --vs-peer
done
