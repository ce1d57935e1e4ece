#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NPROC [train.py args]
# NPROC processes on this node, one per GPU, or CPU processes (gloo) where there is no GPU.
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT.
# The launcher runs through the interpreter that runs tools/train.py (PYTHON, else the
# repository's .venv, else python3), so the environment need not be activated.
set -euo pipefail
CONFIG=${1:?usage: tools/dist_train.sh CONFIG NPROC [train.py args]}
NPROC=${2:?usage: tools/dist_train.sh CONFIG NPROC [train.py args]}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON=$root/.venv/bin/python; else PYTHON=python3; fi
fi

PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$here/train.py" "$CONFIG" --launcher pytorch "${@:3}"
