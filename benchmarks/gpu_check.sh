#!/usr/bin/env bash
# The GPU issue's device check in one run (at most 9 min 20 s, under the device's 10 min per command): the CUDA
# and kernel tests, bench_gpu.py --quick, the kernels per dot arithmetic and launch geometry
# (tune_kernels.py), then where an update's GPU time goes (profile_update.py: the Elman stack of the missed
# 10x row) and the split-K candidates for its weight gradients (bench_weight_gradients.py); each part
# time-boxed so that one call brings back all four.
#
# Run from the repository root on a machine with a CUDA GPU whose python3 has torch, Triton, xarray,
# scipy, tqdm, pytest and pytest-xdist. Missing packages (netCDF4 and cftime, for the default study's
# file) travel as wheels in .whl/ (made elsewhere with `pip download --no-deps --only-binary=:all:
# --python-version 3.12 ... -d .whl netCDF4 cftime`): they are installed to /tmp/site first. The log goes
# to $OUT/gpu_check.log (or /tmp) as well as to the terminal.
set -uo pipefail
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" || exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
log="${OUT:-/tmp}/gpu_check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee "$log"
python3 -c "import torch, triton; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__)" \
    2>&1 | tee -a "$log"
part() {  # part SECONDS NAME COMMAND...: run one part with a time limit, log it, note its time and status
    local limit=$1 name=$2 start=$SECONDS; shift 2
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local status=${PIPESTATUS[0]}
    echo "== $name: exit $status after $(( SECONDS - start )) s (limit $limit s)" | tee -a "$log"
    return "$status"
}
# 8 xdist workers, each pinned to a core of its own by tests/conftest.py; the tests spread one by one; -rP
# prints what passing tests print (the pixel-MNIST test: each tensor's errors against float64)
part 130 tests python3 -m pytest -q -p no:cacheprovider -n 8 --dist load -rs -rP \
    tests/test_kernels.py tests/test_models.py tests/test_execution.py -k "cuda or compiled or kernel"; tests=$?
# 171 s on the H200, 2026-11-30, before 32 more builds: its last section (the default study on cuda and on the CPU,
# measured then) may be cut, to leave the tests, whose new builds the later parts reuse, 20 s more
part 220 bench_gpu python3 benchmarks/bench_gpu.py --quick; bench=$?
part 150 tune_kernels python3 benchmarks/tune_kernels.py; tune=$?    # 128 s with 4 geometries at 4 gated shapes (now 12 and 8 at 2)
part 60 profile bash -c "python3 benchmarks/profile_update.py --cell elman --batch 256 --cells 32 --rows 12 \
    && python3 benchmarks/bench_weight_gradients.py"; profile=$?  # 25 s, then the weight gradients' candidates
exit $(( tests || bench || tune || profile ))
