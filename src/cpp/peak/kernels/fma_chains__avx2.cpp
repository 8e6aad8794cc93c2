// The FMA chains of peak.h for ISA avx2: 12 ymm accumulators of 8 floats (of the 16 registers;
// two FMA ports of latency 4-5 need 8-10 in flight). Compiled with -mavx2 -mfma only.
#include <immintrin.h>

#include "peak/kernels/fma_chains_impl.h"

namespace fastcnn {

namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
};

}  // namespace

const FmaChains f32_fma_chains__avx2 = fma_chains_of<Avx2, 12>();

}  // namespace fastcnn
