#!/usr/bin/env bash
# One device call (bench/gpu_speed.py's docstring has the three steps): build llama-bench with CUDA for sm_90 from
# the llama.cpp sources in .gpu/llama.cpp, then benchmark the GGUFs planned in .gpu/models/ within the time left.
# Everything goes under $OUT: env.txt (GPU, driver, clocks, toolchain, build time), build.log, bench.log,
# results.json, mem.csv. Run from the repository root on the device:  bash bench/gpu_speed.sh
#   GPU_SPEED_BUDGET_S       seconds from start to the last benchmark's end (default 530)
#   GPU_SPEED_BUILD_LIMIT_S  the build is stopped after this many seconds and nothing is benchmarked (default 390)
set -u
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/gpu_speed_out}
SRC=$ROOT/.gpu/llama.cpp
BUILD=${GPU_SPEED_BUILD_DIR:-/tmp/gpu_speed_build}
BUDGET=${GPU_SPEED_BUDGET_S:-530}
BUILD_LIMIT=${GPU_SPEED_BUILD_LIMIT_S:-390}
mkdir -p "$OUT"
cd "$ROOT" || exit 1

gpu_state() {
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.draw,power.limit,temperature.gpu,pstate,memory.used,memory.total --format=csv
}
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  gpu_state
  nvidia-smi
  nvcc --version
  cmake --version | head -1
  echo "ninja $(ninja --version)"
  gcc --version | head -1
  lscpu | grep -E '^(Model name|CPU\(s\)):'
  free -g
  df -h /tmp "$ROOT"
  python3 -c "import numpy, sys; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
  python3 -c "import pynvml; print('pynvml ok')" 2>&1 | tail -1
} >"$OUT/env.txt" 2>&1
head -3 "$OUT/env.txt"

# Build info from the flags, not from git: GIT_CEILING_DIRECTORIES keeps git from finding this repository above.
export GIT_CEILING_DIRECTORIES=$ROOT/.gpu
FLAGS=(-G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMIT=0c1e57098 -DLLAMA_BUILD_NUMBER=0)
# A CUDA toolkit assembled from pip wheels may lack cuBLAS: then take the one PyTorch's wheels bring (nvidia/cu13),
# its headers through a folder that holds only them (the wheel's include/ has other CUDA headers too).
if ! compgen -G "/usr/local/cuda*/lib64/libcublas.so*" >/dev/null && ! compgen -G "/usr/local/cuda*/targets/*/lib/libcublas.so*" >/dev/null; then
  CUBLAS=$(python3 -c 'import glob, os, sys
hits = [h for r in sys.path for h in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib", "libcublas.so.*")))]
print(hits[0] if hits else "")')
  if [ -n "$CUBLAS" ]; then
    D=$(dirname "$CUBLAS")
    INC=/tmp/gpu_speed_cublas_include
    mkdir -p "$INC" && ln -sf "$D"/../include/cublas*.h "$INC"/
    FLAGS+=("-DCUDA_cublas_LIBRARY=$CUBLAS" "-DCUDA_cublasLt_LIBRARY=$(ls "$D"/libcublasLt.so.* | head -1)"
      "-DCMAKE_CUDA_FLAGS=-I$INC" "-DCMAKE_CXX_FLAGS=-I$INC")
    export LD_LIBRARY_PATH=$D${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "cublas from pip: $CUBLAS" | tee -a "$OUT/env.txt"
  fi
fi
# The driver library, for ggml's VMM memory pool; without it, the legacy pool.
LIBCUDA=$( (ldconfig -p 2>/dev/null | awk '/libcuda\.so/ {print $NF}'; ls /usr/local/nvidia/lib64/libcuda.so* /usr/lib/x86_64-linux-gnu/libcuda.so* /usr/lib64/libcuda.so* 2>/dev/null) | head -1)
if [ -n "$LIBCUDA" ]; then FLAGS+=("-DCUDA_cuda_driver_LIBRARY=$LIBCUDA"); else FLAGS+=(-DGGML_CUDA_NO_VMM=ON); fi
echo "cmake flags: ${FLAGS[*]}" | tee -a "$OUT/env.txt"
TB=$(date +%s)
cmake -S "$SRC" -B "$BUILD" "${FLAGS[@]}" >"$OUT/build.log" 2>&1
RC=$?
if [ "$RC" -eq 0 ]; then
  # timeout signals its whole process group, so ninja and nvcc stop with it.
  timeout -k 5 $((BUILD_LIMIT - $(date +%s) + TB)) cmake --build "$BUILD" --target llama-bench -j 16 >>"$OUT/build.log" 2>&1
  RC=$?
fi
TE=$(date +%s)
echo "build rc=$RC seconds=$((TE - TB))" | tee -a "$OUT/env.txt"
if [ "$RC" -ne 0 ] || [ ! -x "$BUILD/bin/llama-bench" ]; then
  tail -30 "$OUT/build.log"
  echo "build failed or passed ${BUILD_LIMIT} s: no benchmarks run"
  exit 0
fi

PYTHONUNBUFFERED=1 python3 bench/gpu_speed.py run --bench "$BUILD/bin/llama-bench" --out "$OUT" --deadline $((T0 + BUDGET))
{
  echo "after runs:"
  gpu_state
  echo "total seconds=$(($(date +%s) - T0))"
} >>"$OUT/env.txt" 2>&1
tail -3 "$OUT/env.txt"
