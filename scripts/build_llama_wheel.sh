#!/usr/bin/env bash
# Builds (once) a llama-cpp-python wheel for this CPU and prints its path.
#
# PyPI has no binary wheel for cp311/linux and the default source build compiles
# AMX kernels that segfault on the first decode here,
# so we pass explicit ISA flags read from /proc/cpuinfo. The wheel is cached
# outside the checkout, keyed by version and flags, so a fresh clone on the same
# machine reuses it and a different CPU gets its own build (pip's own wheel cache
# ignores CMAKE_ARGS).
set -euo pipefail
# The version requirements.lock pins (LLAMA_CPP_VERSION overrides it).
locked=$(sed -n 's/^llama-cpp-python==//p' "$(dirname "$0")/../requirements.lock" 2>/dev/null || true)
version="${LLAMA_CPP_VERSION:-${locked:-0.3.36}}"
python="${PYTHON:-python3}"

flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
has() { grep -qw "$1" /proc/cpuinfo; }
# Each optional flag only when the CPU lists it (AVX_VNNI miscompiles on some EPYCs otherwise).
has avx_vnni && flags="$flags -DGGML_AVX_VNNI=ON"
if has avx512f; then
  flags="$flags -DGGML_AVX512=ON"
  has avx512vbmi && flags="$flags -DGGML_AVX512_VBMI=ON"
  has avx512_vnni && flags="$flags -DGGML_AVX512_VNNI=ON"
  has avx512_bf16 && flags="$flags -DGGML_AVX512_BF16=ON"
fi
key=$(printf '%s %s' "$version" "$flags" | sha256sum | cut -c1-16)
cache="${PRIMFLOW_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/primflow/wheels}/llama-cpp-python-$version-$key"
wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $version for this CPU (about 4 minutes, once): $flags" >&2
  mkdir -p "$cache.tmp"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$python" -m pip wheel --quiet --no-cache-dir --no-deps -w "$cache.tmp" "llama-cpp-python==$version" >&2
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
  printf '%s\n' "$flags" > "$cache/CMAKE_ARGS"
  wheel=$(ls "$cache"/llama_cpp_python-*.whl | head -n1)
fi
echo "$wheel"
