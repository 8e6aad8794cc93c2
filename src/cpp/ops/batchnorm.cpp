// Batch normalisation statistics, normalisation and backward pass (float and double), for
// (N, D) features and, without the reference's NHWC transposes, for NCHW per-channel data.
// Leaves the O(C) per-channel arithmetic (running-stat update, inv_std) to Python, where it
// keeps the reference's numpy promotion rules exactly.
//
// Layout contract: x, y, dy, dx are (N, C, S) row-major (S = 1 for batchnorm, S = H*W for the
// spatial variant); per-channel vectors are (C,) contiguous.
//
// Reductions: N is split into min(N, 16) fixed chunks (boundaries depend only on N). A work
// item is a (chunk, channel) pair for S > 1, a chunk of whole rows for S = 1; its sum uses
// kLanes independent double accumulators (vectorisable without reassociation, which gcc
// refuses without -ffast-math), combined in lane order, and the chunks are then combined in
// chunk order. So every sum has the same bits for any thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/memory.h"
#include "common/parallel.h"
#include "ops/elementwise.h"
#include "ops/ops.h"

namespace fastcnn {

namespace {

constexpr int64_t kMaxChunks = 16;
constexpr int kLanes = 8;

int64_t total_of(const BnLayout& L) {
  return checked_mul(checked_mul(L.n, L.c, "batchnorm"), L.s, "batchnorm");
}

// out0[c] = sum over (n, s) of t0(i, c), and out1[c] likewise of t1 when kTwo, with
// i = (n*C + c)*S + s the flat index. Each sum keeps kLanes explicit accumulators so the
// compiler vectorises it without reassociating anything.
template <bool kTwo, class Term0, class Term1>
void channel_sums(const BnLayout& L, Term0&& t0, Term1&& t1, double* out0, double* out1) {
  const int64_t N = L.n, C = L.c, S = L.s;
  const int64_t chunks = std::min(N, kMaxChunks);
  // partial[(k*2 + j)*C + c]: chunk k's sum j of channel c.
  std::vector<double> partial(static_cast<size_t>(checked_mul(chunks * 2, C, "batchnorm")));
  auto chunk_rows = [&](int64_t k, int64_t& n0, int64_t& n1) {
    partition(N, static_cast<int>(k), static_cast<int>(chunks), n0, n1);
  };
  // Per element and sum: a read (at most 8 bytes) and an add or two.
  const Work work =
      Work{2.0 * (kTwo ? 2 : 1), 8.0 * (kTwo ? 2 : 1)} * static_cast<double>(total_of(L));
  if (S == 1) {  // (N, D): a chunk of rows at a time, vectorised across the features
    parallel_run(threads_for(chunks, work), [&](int part, int parts) {
      int64_t k0, k1;
      partition(chunks, part, parts, k0, k1);
      for (int64_t k = k0; k < k1; ++k) {
        double* acc0 = partial.data() + 2 * k * C;
        double* acc1 = acc0 + C;
        std::fill(acc0, acc0 + 2 * C, 0.0);
        int64_t n0, n1;
        chunk_rows(k, n0, n1);
        for (int64_t n = n0; n < n1; ++n) {
          for (int64_t c = 0; c < C; ++c) acc0[c] += t0(n * C + c, c);
          if constexpr (kTwo) {
            for (int64_t c = 0; c < C; ++c) acc1[c] += t1(n * C + c, c);
          }
        }
      }
    });
  } else {  // (N, C, S): one channel of one chunk at a time, vectorised along S
    const int64_t items = chunks * C;
    parallel_run(threads_for(items, work), [&](int part, int parts) {
      int64_t i0, i1;
      partition(items, part, parts, i0, i1);
      for (int64_t item = i0; item < i1; ++item) {
        const int64_t k = item / C, c = item % C;
        double acc0[kLanes] = {}, acc1[kLanes] = {};
        int64_t n0, n1;
        chunk_rows(k, n0, n1);
        for (int64_t n = n0; n < n1; ++n) {
          const int64_t base = (n * C + c) * S;
          int64_t s = 0;
          for (; s + kLanes <= S; s += kLanes) {
            for (int l = 0; l < kLanes; ++l) acc0[l] += t0(base + s + l, c);
            if constexpr (kTwo) {
              for (int l = 0; l < kLanes; ++l) acc1[l] += t1(base + s + l, c);
            }
          }
          for (; s < S; ++s) {
            acc0[0] += t0(base + s, c);
            if constexpr (kTwo) acc1[0] += t1(base + s, c);
          }
        }
        double sum0 = 0.0, sum1 = 0.0;
        for (int l = 0; l < kLanes; ++l) {
          sum0 += acc0[l];
          sum1 += acc1[l];
        }
        partial[static_cast<size_t>(2 * k * C + c)] = sum0;
        partial[static_cast<size_t>((2 * k + 1) * C + c)] = sum1;
      }
    });
  }
  for (int64_t c = 0; c < C; ++c) {  // chunks in order
    double sum0 = 0.0, sum1 = 0.0;
    for (int64_t k = 0; k < chunks; ++k) {
      sum0 += partial[static_cast<size_t>(2 * k * C + c)];
      sum1 += partial[static_cast<size_t>((2 * k + 1) * C + c)];
    }
    out0[c] = sum0;
    if (kTwo) out1[c] = sum1;
  }
}

// No second sum.
constexpr auto kNone = [](int64_t, int64_t) { return 0.0; };

// Calls f(i, c) for every element: rows in parallel for S = 1 (c varies fastest, so per-channel
// loads are contiguous), (n, c) planes in parallel otherwise (c fixed along the inner loop).
template <class F>
void for_each_element(const BnLayout& L, F&& f) {
  const int64_t C = L.c, S = L.s;
  const int64_t items = S == 1 ? L.n : L.n * C;
  // Per element: up to three reads and a write (at most 8 bytes each), a few flops.
  const Work work = Work{6, 32} * static_cast<double>(total_of(L));
  parallel_run(threads_for(items, work), [&](int part, int parts) {
    int64_t t0, t1;
    partition(items, part, parts, t0, t1);
    for (int64_t t = t0; t < t1; ++t) {
      if (S == 1) {
        for (int64_t c = 0; c < C; ++c) f(t * C + c, c);
      } else {
        const int64_t c = t % C, base = t * S;
        for (int64_t s = 0; s < S; ++s) f(base + s, c);
      }
    }
  });
}

}  // namespace

template <class T>
void batchnorm_stats(const BnLayout& L, const T* x, T* mean, T* var) {
  const int64_t C = L.c;
  const double count = static_cast<double>(L.n) * static_cast<double>(L.s);
  std::vector<double> sum(static_cast<size_t>(C)), mu(static_cast<size_t>(C));
  channel_sums<false>(
      L, [&](int64_t i, int64_t) { return static_cast<double>(x[i]); }, kNone, sum.data(), nullptr);
  for (int64_t c = 0; c < C; ++c) mu[c] = sum[c] / count;
  // Two passes, as the reference: the variance about the (here unrounded) mean.
  const double* m = mu.data();
  channel_sums<false>(
      L,
      [&](int64_t i, int64_t c) {
        const double d = static_cast<double>(x[i]) - m[c];
        return d * d;
      },
      kNone, sum.data(), nullptr);
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = static_cast<T>(mu[c]);
    var[c] = static_cast<T>(sum[c] / count);
  }
}

template <class T>
void batchnorm_apply(const BnLayout& L, const T* x, const T* gamma, const T* beta, const T* mean,
                     const T* inv_std, T* y) {
  for_each_element(L, [&](int64_t i, int64_t c) {
    y[i] = gamma[c] * ((x[i] - mean[c]) * inv_std[c]) + beta[c];
  });
}

template <class T>
void batchnorm_backward(const BnLayout& L, const T* dy, const T* x, const T* gamma, const T* mean,
                        const T* inv_std, T* dx, T* dgamma, T* dbeta) {
  const int64_t C = L.c;
  std::vector<double> sums(static_cast<size_t>(2 * C));
  channel_sums<true>(
      L, [&](int64_t i, int64_t) { return static_cast<double>(dy[i]); },
      [&](int64_t i, int64_t c) {
        const T xhat = (x[i] - mean[c]) * inv_std[c];
        return static_cast<double>(dy[i] * xhat);
      },
      sums.data(), sums.data() + C);
  // m is the reference's rows count, a Python int promoted to T by numpy.
  const T m = static_cast<T>(checked_mul(L.n, L.s, "batchnorm"));
  std::vector<T> k(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    dbeta[c] = static_cast<T>(sums[c]);
    dgamma[c] = static_cast<T>(sums[C + c]);
    k[c] = gamma[c] * inv_std[c] / m;
  }
  const T* kc = k.data();
  for_each_element(L, [&](int64_t i, int64_t c) {
    const T xhat = (x[i] - mean[c]) * inv_std[c];
    dx[i] = kc[c] * ((m * dy[i] - dbeta[c]) - xhat * dgamma[c]);
  });
}

#define FASTCNN_INSTANTIATE_BATCHNORM(T)                                                       \
  template void batchnorm_stats<T>(const BnLayout&, const T*, T*, T*);                         \
  template void batchnorm_apply<T>(const BnLayout&, const T*, const T*, const T*, const T*,    \
                                   const T*, T*);                                              \
  template void batchnorm_backward<T>(const BnLayout&, const T*, const T*, const T*, const T*, \
                                      const T*, T*, T*, T*);
FASTCNN_INSTANTIATE_BATCHNORM(float)
FASTCNN_INSTANTIATE_BATCHNORM(double)
#undef FASTCNN_INSTANTIATE_BATCHNORM

}  // namespace fastcnn
