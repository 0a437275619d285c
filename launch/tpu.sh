#!/usr/bin/env bash
# Run sqjax on a Cloud TPU VM slice (v4-8, v5e-8, v5p-8, or larger pod slices).
#
#   launch/tpu.sh [--dry-run] create  --name NAME --zone ZONE --type v5e-8 [--spot]
#   launch/tpu.sh [--dry-run] install --name NAME --zone ZONE      # copy this checkout to every worker, pip install
#   launch/tpu.sh [--dry-run] stage   --name NAME --zone ZONE --config FILE --stage STAGE --run-dir gs://BUCKET/RUN
#   launch/tpu.sh [--dry-run] run     --name NAME --zone ZONE --config FILE --run-dir gs://BUCKET/RUN
#   launch/tpu.sh [--dry-run] logs    --name NAME --zone ZONE [--worker N]
#   launch/tpu.sh [--dry-run] resume-loop --name NAME --zone ZONE --config FILE --run-dir gs://BUCKET/RUN [--stage STAGE] [--type T] [--spot]
#   launch/tpu.sh [--dry-run] delete  --name NAME --zone ZONE
#
# Every worker runs the same command at once (`--worker=all`); sqjax calls
# jax.distributed.initialize() itself on a TPU VM, so the workers form one global mesh.
# The run directory is a bucket: each worker has its own disk, which a preempted slice loses.
# A local --run-dir is accepted only with --single-host (a v4-8/v5e-8 slice: one worker).
# Stages are resumable, so `resume-loop` recreates a preempted slice and reruns the same
# command, which resumes from the bucket, until the stage reports finished. --dry-run prints
# the commands instead.
set -euo pipefail

DRY_RUN=0
RUN_DIR=""
NAME="" ZONE="" TYPE="" CONFIG="" STAGE="" WORKER="0" SPOT=0 SINGLE_HOST=0
PROJECT_FLAG=""

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "launch/tpu.sh: $*" >&2; exit 2; }

run() {
  if [[ $DRY_RUN == 1 ]]; then printf '%s\n' "$*"; else eval "$@"; fi
}

accelerator() {  # the slice name users write -> gcloud accelerator type and runtime version
  case "$1" in
    v4-*) echo "$1 tpu-ubuntu2204-base" ;;
    v5e-*|v5litepod-*) echo "v5litepod-${1#*-} v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "$1 v2-alpha-tpuv5" ;;
    v6e-*) echo "$1 v2-alpha-tpuv6e" ;;
    *) die "unknown TPU type '$1'; use v4-8, v5e-8, v5p-8 or v6e-8 (or larger slices)" ;;
  esac
}

need() { for v in "$@"; do [[ -n ${!v} ]] || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') is required for '$CMD'"; done; }

ssh_all() {  # ssh_all COMMAND: the same command on every worker of the slice
  run "gcloud compute tpus tpu-vm ssh $NAME --zone=$ZONE$PROJECT_FLAG --worker=all --command='$1'"
}

[[ $# -gt 0 ]] || usage
if [[ $1 == --dry-run ]]; then DRY_RUN=1; shift; fi
[[ $# -gt 0 ]] || usage
CMD=$1; shift
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --type) TYPE=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --stage) STAGE=$2; shift 2 ;;
    --run-dir) RUN_DIR=$2; shift 2 ;;
    --worker) WORKER=$2; shift 2 ;;
    --project) PROJECT_FLAG=" --project=$2"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --single-host) SINGLE_HOST=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage ;;
    *) die "unknown option '$1'" ;;
  esac
done

REMOTE=sqjax
SQJAX="cd $REMOTE && .venv/bin/sqjax"
LOG="\$HOME/sqjax-\$(hostname).log"
RUN_FLAG=" --out $RUN_DIR"

need_run_dir() {  # the run directory every worker reads and writes: a gs:// bucket
  need RUN_DIR
  case "$RUN_DIR" in
    gs://?*) ;;
    *://*) die "--run-dir $RUN_DIR: unsupported scheme; use gs://BUCKET/PATH" ;;
    *) [[ $SINGLE_HOST == 1 ]] || die "--run-dir $RUN_DIR is a local directory, which every worker of a multi-host slice would have its own copy of (lost on preemption); use gs://BUCKET/PATH, or add --single-host for a one-worker slice" ;;
  esac
}

create() {
  need NAME ZONE TYPE
  local spec acc version
  spec=$(accelerator "$TYPE") || exit 2
  read -r acc version <<<"$spec"
  local spot=""; [[ $SPOT == 1 ]] && spot=" --spot"
  run "gcloud compute tpus tpu-vm create $NAME --zone=$ZONE$PROJECT_FLAG --accelerator-type=$acc --version=$version$spot"
}

install() {
  need NAME ZONE
  run "git archive --format=tar.gz -o /tmp/sqjax-src.tar.gz HEAD"
  run "gcloud compute tpus tpu-vm scp /tmp/sqjax-src.tar.gz $NAME: --zone=$ZONE$PROJECT_FLAG --worker=all"
  ssh_all "mkdir -p $REMOTE && tar -xzf sqjax-src.tar.gz -C $REMOTE && cd $REMOTE && python3 -m venv .venv && .venv/bin/pip install -q -e \".[tpu]\" && .venv/bin/pip install -q --no-deps -r requirements-assets.txt"
}

stage() {
  need NAME ZONE CONFIG STAGE
  need_run_dir
  ssh_all "$SQJAX stage $STAGE --config $CONFIG$RUN_FLAG 2>&1 | tee -a $LOG"
}

run_all() {
  need NAME ZONE CONFIG
  need_run_dir
  ssh_all "$SQJAX run --config $CONFIG$RUN_FLAG 2>&1 | tee -a $LOG"
}

logs() {
  need NAME ZONE
  run "gcloud compute tpus tpu-vm ssh $NAME --zone=$ZONE$PROJECT_FLAG --worker=$WORKER --command='tail -n 200 -f \$HOME/sqjax-*.log'"
}

state() {
  gcloud compute tpus tpu-vm describe "$NAME" --zone="$ZONE"$PROJECT_FLAG --format='value(state)' 2>/dev/null || echo MISSING
}

resume_loop() {  # rerun until the command succeeds; recreate the slice when it was preempted
  need NAME ZONE CONFIG TYPE
  need_run_dir
  local cmd=run_all; [[ -n $STAGE ]] && cmd=stage
  if [[ $DRY_RUN == 1 ]]; then
    echo "# loop: while the command fails, if the slice state is PREEMPTED or MISSING:"
    delete_slice; create; install
    echo "# then rerun; it resumes from $RUN_DIR (finished shards are skipped):"
    $cmd
    return
  fi
  until $cmd; do
    local s; s=$(state)
    echo "launch/tpu.sh: command failed; slice state $s" >&2
    if [[ $s == PREEMPTED || $s == MISSING || $s == TERMINATED ]]; then
      [[ $s == MISSING ]] || delete_slice
      create && install
    fi
    sleep 30
  done
}

delete_slice() {
  need NAME ZONE
  run "gcloud compute tpus tpu-vm delete $NAME --zone=$ZONE$PROJECT_FLAG --quiet"
}

case "$CMD" in
  create) create ;;
  install) install ;;
  stage) stage ;;
  run) run_all ;;
  logs) logs ;;
  resume-loop) resume_loop ;;
  delete) delete_slice ;;
  *) die "unknown command '$CMD'; use create, install, stage, run, logs, resume-loop or delete" ;;
esac
