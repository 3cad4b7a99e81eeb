#!/usr/bin/env bash
# The prepared run for a lent CUDA machine (README, "GPU"). It expects the wheels that machine lacks in
# .whl/ (diffusers, gsplat, nerfacc, plyfile, importlib_metadata and sdbench itself, for its entry
# points; see the README for the download command), installs them, builds nerfacc's CUDA extension in
# the background, times every loss at real scale meanwhile (python -m benchmarks.gpu; its 3DGS part
# builds gsplat's extension, ~75 s on 16 cores: a second concurrent gsplat build would race it, since
# gsplat clears its build folder), then runs the gpu-marked tests. Logs and result files go to $OUT.
set -u
OUT=${OUT:-/tmp/sdbench-device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=/tmp/torch_ext TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
start=$(date +%s)
stamp() { echo "[device_check +$(( $(date +%s) - start ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi -L
python3 -c "import torch, diffusers, gsplat, nerfacc, peft, transformers as t; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'gsplat', gsplat.__version__, 'nerfacc', nerfacc.__version__, 'peft', peft.__version__, 'transformers', t.__version__)"
stamp "building nerfacc's CUDA extension in the background"
(MAX_JOBS=3 timeout 400 python3 -c "from nerfacc.cuda._backend import _C; print('nerfacc extension:', _C)" >"$OUT/build_nerfacc.log" 2>&1; echo "rc=$? after $(( $(date +%s) - start ))s" >>"$OUT/build_nerfacc.log") &
stamp "benchmarks.gpu"
timeout "${GPU_OPERATOR_TIMEOUT:-120}" python3 -m benchmarks.operator_gpu 2>&1 | tee "$OUT/operator_gpu.log"
cp benchmarks/results/operator_gpu.json "$OUT/" 2>/dev/null
MAX_JOBS=12 timeout "${GPU_BENCH_TIMEOUT:-420}" python3 -m benchmarks.gpu --steps 4 --rounds 3 --gaussian-steps 15 2>&1 | tee "$OUT/gpu_bench.log"
cp benchmarks/results/gpu.json "$OUT/" 2>/dev/null
wait
stamp "nerfacc build: $(tail -n1 "$OUT/build_nerfacc.log")"
timeout "${GPU_TEST_TIMEOUT:-90}" python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest_gpu.log" | tail -n 15
stamp done
