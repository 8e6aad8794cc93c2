// Helpers shared by the convolution drivers (direct.cpp, winograd.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/geometry.h"
#include "common/memory.h"
#include "common/parallel.h"
#include "common/tuning.h"
#include "gemm/ukernel.h"

namespace fastcnn {

// y = v + bias, or relu(v + bias): the forward epilogue. NaN propagates, as in relu_forward.
template <class T>
inline T output_value(T v, T bias, bool relu) {
  const T out = v + bias;
  return relu && out <= T(0) ? T(0) : out;
}

// The work of one convolution pass (forward, backward-data or weight gradient: the same
// multiply-adds) for the parallel wrapper: 2*N*K*C*R*S*P*Q flops in float32 units, reading x
// and w and writing y once.
template <class T>
Work conv_work(const Geometry2d& g) {
  const double n = static_cast<double>(g.n);
  const double macs =
      n * static_cast<double>(g.k * g.c * g.r * g.s) * static_cast<double>(g.p * g.q);
  const double bytes = sizeof(T) * (n * static_cast<double>(g.c * g.h * g.w + g.k * g.p * g.q) +
                                    static_cast<double>(g.k * g.c * g.r * g.s));
  return Work{2.0 * macs * (sizeof(T) / sizeof(float)), bytes};
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

// A chunk's bias gradient: db[k] = the sum of dy's plane (n, k) over images i0 <= n < i1, in
// image order (dy is N x K x P x Q).
template <class T>
void bias_gradient(const Geometry2d& g, const T* dy, int64_t i0, int64_t i1, T* db) {
  const int64_t pq = g.p * g.q;
  std::fill(db, db + g.k, T(0));
  for (int64_t n = i0; n < i1; ++n)
    for (int64_t k = 0; k < g.k; ++k) db[k] += lane_sum(dy + (n * g.k + k) * pq, pq);
}

// A weight gradient sums over the batch in fixed chunks of images (at most
// tuning::kWeightGradientChunks), whatever the thread count:
// chunk(i0, i1, part) writes the partial sums (`size` values) of images [i0, i1) to part, the
// chunks run on the threads, and sum[e] is part_0[e] + part_1[e] + ... added in chunk order
// (any split of e between threads gives the same bits). `work` is all the chunks' work.
// Returns false, with sum undefined, if a chunk returned false.
//
// Memory: the first part's chunks start the sum, so that part writes its first chunk straight
// into sum and adds each later one as soon as it is done (one chunk's buffer); only the other
// parts' chunks wait in buffers until every chunk is done (on two threads 8 of 16 chunks: conv6
// of DeepConvNet at batch 100 kept 4 MiB of partial sums, now 2.25 MiB; on one thread one).
template <class T, class Chunk>
bool sum_over_image_chunks(int64_t n, int64_t size, T* sum, Work work, Chunk&& chunk) {
  const int64_t chunks = std::min<int64_t>(n, tuning::kWeightGradientChunks);
  if (chunks == 0) {
    std::fill(sum, sum + size, T(0));
    return true;
  }
  const int n_parts = threads_for(chunks, work);
  int64_t first_end, unused;  // the first part's chunks are [0, first_end)
  partition(chunks, 0, n_parts, unused, first_end);
  const int64_t waiting = chunks - first_end;  // chunks kept until the end
  AlignedBuffer<T> own(first_end > 1 ? size : 0);
  AlignedBuffer<T> partial(checked_mul(waiting, size, "conv2d weight gradient partial sums"));
  std::vector<char> ok(static_cast<std::size_t>(n_parts), 1);
  parallel_run(n_parts, [&](int part, int parts) {
    int64_t c0, c1;
    partition(chunks, part, parts, c0, c1);
    for (int64_t ch = c0; ch < c1 && ok[part]; ++ch) {
      int64_t i0, i1;
      partition(n, static_cast<int>(ch), static_cast<int>(chunks), i0, i1);
      if (ch >= first_end) {
        ok[part] = chunk(i0, i1, partial.data() + (ch - first_end) * size);
      } else if (ch == 0) {
        ok[part] = chunk(i0, i1, sum);
      } else {
        ok[part] = chunk(i0, i1, own.data());
        for (int64_t e = 0; e < size; ++e) sum[e] += own.data()[e];
      }
    }
  });
  if (std::find(ok.begin(), ok.end(), 0) != ok.end()) return false;
  if (waiting == 0) return true;
  const Work add_work{0, sizeof(T) * static_cast<double>(waiting + 1) * static_cast<double>(size)};
  parallel_for(size, add_work, [&](int64_t e0, int64_t e1) {
    for (int64_t ch = 0; ch < waiting; ++ch) {
      const T* src = partial.data() + ch * size;
      for (int64_t e = e0; e < e1; ++e) sum[e] += src[e];
    }
  });
  return true;
}

}  // namespace fastcnn
