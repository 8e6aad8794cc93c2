// The FMA chains of peak.h for ISA avx512: 16 zmm accumulators of 16 floats (of the 32
// registers; two FMA ports of latency 4 need 8 in flight). Compiled with -mavx512f -mfma only.
#include <immintrin.h>

#include "peak/kernels/fma_chains_impl.h"

namespace fastcnn {

namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};

}  // namespace

const FmaChains f32_fma_chains__avx512 = fma_chains_of<Avx512, 16>();

}  // namespace fastcnn
