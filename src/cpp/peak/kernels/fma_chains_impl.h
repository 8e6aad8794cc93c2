// The multiply-add chains of peak.h, written once over a small per-ISA vector type. Include it
// ONLY from a kernels/fma_chains__<isa>.cpp file compiled with that ISA's flags: each defines
// its f32_fma_chains__<isa> from these templates.
#pragma once

#include <cstdint>

#include "peak/peak.h"

namespace fastcnn {

// Internal linkage: every ISA's file compiles its own copy with its own flags.
namespace {

// Vec: V, kLanes, set1(x), fma(a, b, c) = a * b + c, store(float*, V). kChains accumulators
// stay in registers (the inner loop is unrolled at compile time), each an independent chain,
// so the core overlaps kChains multiply-adds: enough to cover the FMA latency on every port.
template <class Vec, int kChains>
float fma_chains_run(int64_t rounds, float a, float b) {
  using V = typename Vec::V;
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Vec::set1(static_cast<float>(i));
  const V va = Vec::set1(a), vb = Vec::set1(b);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains; ++i) acc[i] = Vec::fma(acc[i], va, vb);
  }
  float lanes[Vec::kLanes];
  float sum = 0;
  for (int i = 0; i < kChains; ++i) {
    Vec::store(lanes, acc[i]);
    for (int j = 0; j < Vec::kLanes; ++j) sum += lanes[j];
  }
  return sum;
}

template <class Vec, int kChains>
constexpr FmaChains fma_chains_of() {
  return FmaChains{&fma_chains_run<Vec, kChains>, kChains, Vec::kLanes};
}

}  // namespace

}  // namespace fastcnn
