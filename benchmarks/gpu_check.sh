#!/usr/bin/env bash
# The GPU issue's device check in one run (a few minutes): the CUDA tests, then bench_gpu.py --quick.
#
# Run from the repository root on a machine with a CUDA GPU whose python3 has torch, Triton, xarray,
# scipy, tqdm and pytest. Missing packages (netCDF4 and cftime, for the default study's file) travel as
# wheels in .whl/ (made elsewhere with `pip download --no-deps --only-binary=:all: --python-version 3.12
# ... -d .whl netCDF4 cftime`): they are installed to /tmp/site first. The log goes to $OUT/gpu_check.log
# (or /tmp) as well as to the terminal.
set -uo pipefail
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" || exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
log="${OUT:-/tmp}/gpu_check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$log"
python3 -c "import torch, triton; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__)" \
    2>&1 | tee -a "$log"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_kernels.py tests/test_models.py -k "cuda or compiled or kernel" \
    2>&1 | tee -a "$log"
tests=$?
python3 benchmarks/bench_gpu.py --quick 2>&1 | tee -a "$log"
exit $(( tests || $? ))
