// Helpers shared by the convolution drivers (conv.cpp, winograd.cpp).
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/memory.h"
#include "gemm/ukernel.h"

namespace fastcnn {

// y = v + bias, or relu(v + bias): the forward epilogue. NaN propagates, as in relu_forward.
template <class T>
inline T output_value(T v, T bias, bool relu) {
  const T out = v + bias;
  return relu && out <= T(0) ? T(0) : out;
}

// cfg with its KC block shrunk so that K splits into equal blocks (K = 288 with KC = 256 would
// otherwise leave a 32-deep block that costs a whole extra pass over the C tiles).
template <class T>
GemmConfig<T> balanced_kc(const GemmConfig<T>& cfg, int64_t K) {
  GemmConfig<T> out = cfg;
  const int64_t blocks = std::max<int64_t>(1, ceil_div(K, cfg.kc));
  out.kc = std::min(cfg.kc, round_up(ceil_div(K, blocks), 8));
  return out;
}

// Sum of v[0:n] in a fixed order that vectorises: 16 interleaved partial sums, then those in
// order. (A single running sum is one long dependency chain of adds.)
template <class T>
T lane_sum(const T* v, int64_t n) {
  constexpr int kLanes = 16;
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += v[j + l];
  for (int l = 0; j < n; ++j, ++l) acc[l] += v[j];
  T sum = T(0);
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

}  // namespace fastcnn
