// The multiply-add chains of peak.h for ISA generic: 12 accumulators of 4 floats as GCC vector
// extensions (SSE2 registers on x86-64, which the generic kernels are compiled for too), each
// step a multiply and an add (no FMA without ISA flags). Compiled with no ISA flags (portable)
// only.
#include "peak/kernels/fma_chains_impl.h"

namespace fastcnn {

namespace {

struct Vec4 {
  typedef float V __attribute__((vector_size(16)));
  static constexpr int kLanes = 4;
  static V set1(float x) { return V{x, x, x, x}; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static void store(float* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
};

}  // namespace

const FmaChains f32_fma_chains__generic = fma_chains_of<Vec4, 12>();

}  // namespace fastcnn
