#!/usr/bin/env bash
# IPSD's step cost where users train: on a GPU machine with Python 3.12, a CUDA build of torch and
# no network, install the OpenMMLab stack and ipsd_mm from carried files, then time DeepLabV3-R18-D8
# at 512x1024 (the paper config's 2 images per GPU), baseline vs IPSD (and a frozen teacher
# forward for reference), fp32 and AMP, seconds per iteration and peak GPU memory.
#
#   bash tools/gpu_check.sh --prepare     here, with network: the wheels and mmcv's source into
#                                         .whl/ (git-ignored; about 20 MiB)
#   bash tools/gpu_check.sh --dry-run     here: resolve the carried install for Python 3.12 into
#                                         a fresh target folder, without building mmcv
#   bash tools/gpu_check.sh               there (OUT=folder for the table): install and measure
#
# mmcv 2.1.0 is built from its source release with its compiled ops. Its CUDA ops take longer to
# build than a device run may last, and DeepLabV3 uses none of them, so CUDA is hidden during the
# build and the ops are CPU ops; the script says so in its output.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wheels=$root/.whl
site=${IPSD_SITE:-/tmp/ipsd_site}
out=${OUT:-$root/work_dirs/gpu_check}
py=${PYTHON:-python3}
# What the device machine lacks (its image has torch, numpy, opencv, scipy, matplotlib, regex,
# rich, pyyaml, packaging, tqdm, six, requests): the OpenMMLab packages and their small needs.
pure=(mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 addict==2.4.0 yapf==0.43.0
      termcolor==3.1.0 terminaltables==3.1.10 ftfy==6.3.1 prettytable==3.16.0 wcwidth==0.2.13
      platformdirs==4.3.8 tomli==2.2.1 'setuptools==81.0.0')
binary=(pycocotools==2.0.10 shapely==2.1.1)
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

case "${1:-}" in
  --prepare)
    mkdir -p "$wheels"
    grep -qx '/.whl/' "$root/.git/info/exclude" 2>/dev/null || echo '/.whl/' >> "$root/.git/info/exclude"
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${platforms[@]}" -d "$wheels" "${pure[@]}" "${binary[@]}"
    # Metadata of the source release needs torch and setuptools<82: the set-up environment has both.
    "$py" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$wheels" mmcv==2.1.0
    du -sh "$wheels"; ls "$wheels"
    exit 0;;
  --dry-run)
    tmp=$(mktemp -d)
    # Every carried wheel installs for Python 3.12 from the folder alone (no index).
    "$py" -m pip install -q --no-index --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${platforms[@]}" --target "$tmp" "$wheels"/*.whl
    ls "$wheels"/mmcv-2.1.0.tar.gz >/dev/null
    for pkg in mmengine mmdet mmseg pycocotools shapely yapf addict termcolor ftfy prettytable; do
      [ -d "$tmp/$pkg" ] || { echo "gpu_check: $pkg missing from the carried wheels" >&2; exit 1; }
    done
    echo "gpu_check: dry run ok: the carried wheels install for Python 3.12 into $tmp"
    exit 0;;
  '') ;;
  *) echo "usage: bash tools/gpu_check.sh [--prepare|--dry-run]" >&2; exit 2;;
esac

mkdir -p "$out"
start=$(date +%s)
echo "gpu_check: $("$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))')"
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" "$wheels"/*.whl
export PYTHONPATH=$site:$root
echo "gpu_check: wheels installed in $(( $(date +%s) - start )) s"
# CPU ops with CUDA hidden: CUDA_VISIBLE_DEVICES= makes torch.cuda.is_available() false while
# mmcv's setup.py decides what to compile.
CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$(nproc) \
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir \
  --target "$site" "$wheels"/mmcv-2.1.0.tar.gz
"$py" -c 'import mmcv, mmcv.ops, mmdet, mmseg, ipsd_mm; print("gpu_check: mmcv", mmcv.__version__, "with CPU ops (CUDA hidden during the build), mmdet", mmdet.__version__, "mmseg", mmseg.__version__)'
echo "gpu_check: stack ready in $(( $(date +%s) - start )) s"
PYTHONUNBUFFERED=1 "$py" "$root/tools/benchmark.py" --parts step --device cuda --amp \
  --step-models 512x1024 --repeats 10 | tee "$out/gpu_step_table.txt"
echo "gpu_check: done in $(( $(date +%s) - start )) s; table in $out/gpu_step_table.txt"
