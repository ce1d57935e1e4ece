#!/usr/bin/env bash
# One-command set-up of an isolated OpenMMLab stack for ipsd_mm on a machine with nothing
# installed but Python 3 and a C++ compiler.
#
#   IPSD_VENV     where the environment lives (default: .venv in the repository root)
#   PYTHON        the interpreter that creates it (default: python3)
#   TORCH_SPEC    the torch requirement (default: torch==2.13.0, the CPU build); set it to ""
#                 when the environment already holds the torch you want (e.g. a CUDA build)
#
# Each step is skipped when what it makes is already there, so a second run takes seconds.
# pip keeps the mmcv wheel it built in its cache, so a fresh .venv on the same machine is quick too.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IPSD_VENV:-$root/.venv}
python=${PYTHON:-python3}
torch_spec=${TORCH_SPEC-torch==2.13.0}
mmcv_spec='mmcv==2.1.0'

step=''
trap 'rc=$?; [ $rc -ne 0 ] && echo "setup: FAILED at step \"$step\" (exit $rc); see the messages above." >&2' EXIT
run_step() { step=$1; echo "setup: $step"; }

run_step "create the environment at $venv"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" || { echo "setup: '$python -m venv' failed: install python3-venv." >&2; exit 1; }
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
have() { "$py" -c "$1" >/dev/null 2>&1; }

run_step "torch (${torch_spec:-keep the installed one}) and build tools"
# One resolver run, so torch's own needs cannot lift setuptools past 82 afterwards: mmcv's and
# mim's setup.py import pkg_resources, which setuptools 82 removed.
if [ -n "$torch_spec" ] || ! have 'import pkg_resources, wheel, ninja'; then
  pip install -q $torch_spec 'setuptools<82' wheel ninja  # seconds when all is there
fi
have 'import torch' || { echo "setup: torch does not import; set TORCH_SPEC or install torch into $venv." >&2; exit 1; }

run_step "$mmcv_spec with compiled ops (from source; about 10 minutes the first time on 2 cores)"
if ! have 'import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != "2.1.0")'; then
  # No build isolation: the build must see the torch installed above, or it silently builds
  # without ops. MAX_JOBS lets ninja use every core.
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} pip install --no-build-isolation "$mmcv_spec"
fi

run_step "mmdet, mmsegmentation, mmrazor and ipsd_mm (editable, with the test, demo and kd extras)"
stamp="$venv/.ipsd_mm-installed"
want=$(cat "$root/setup.py" "$root"/requirements/*.txt 2>/dev/null | sha1sum | cut -c1-40)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! have 'import ipsd_mm, importlib.metadata as m; m.version("ipsd_mm")'; then
  pip install -q -e "$root[tests,demo,kd]"
  echo "$want" > "$stamp"
fi

run_step "openmim, for 'mim train ipsd_mm CONFIG'"
# Without its opendatalab dependency: that pulls openxlab, which pins setuptools 60, requests
# 2.28 and rich 13.4 over this stack's. mim's commands never import it.
if ! have 'import mim, pandas, tabulate, model_index'; then
  pip install -q --no-deps 'openmim==0.3.9'
  pip install -q click colorama model-index pandas requests rich tabulate 2>&1 \
    | { grep -v -e opendatalab -e 'dependency resolver does not' || true; }
fi

run_step "let mim find ipsd_mm's configs and tools"
# mim 0.3.9 looks for a package's tools in <site-packages>/<name>/.mim, a folder an editable
# (PEP 660) install does not make: a link to the source package gives it one.
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -e "$site/ipsd_mm" ] || ln -s "$root/ipsd_mm" "$site/ipsd_mm"

run_step "check the stack"
"$py" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmseg, mmengine, mmrazor, torch, ipsd_mm
from mmcv.ops import nms  # the compiled ops: mmdet needs them
import mmrazor.engine, mmrazor.models  # on torch 2 through ipsd_mm.compat
print(f'setup: ok: torch {torch.__version__}, mmcv {mmcv.__version__} (ops), mmengine '
      f'{mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, '
      f'mmrazor {mmrazor.__version__}, ipsd_mm {ipsd_mm.__version__}')
PY
step=''
