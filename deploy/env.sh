# env.sh — sourced by the run and test scripts: puts the CUDA toolkit on PATH when it is
# installed in the usual place, so G4_CUDA=AUTO finds nvcc.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
g4_jobs() { nproc 2>/dev/null || echo 2; }
