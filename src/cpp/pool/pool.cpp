// Max and average pooling drivers: one (n, c) plane is one work item for parallel_for, so every
// element of y / dx is written by exactly one thread and the bits never depend on the thread
// count. A 2x2 stride-2 unpadded fast path (the common CNN pool) is written as branch-free
// selects the compiler vectorises; every other geometry takes a general loop. No intrinsics.
//
// Layout contract: x and dx are (N,C,H,W) row-major; y, dy and argmax are (N,C,P,Q) row-major.
//
// Matching the numpy reference bit for bit:
//  * max: the reference runs numpy's argmax over the window with padding = -inf, i.e. starting
//    from best = -inf, idx = 0 it takes element v when !(v <= best) and stops at the first NaN.
//    The kernels apply exactly that rule, skipping padded positions (they never satisfy it).
//  * sums start at +0 and add window offsets (r, s) in row-major order, as the reference's loop
//    over offsets does; skipping padding is exact because adding +0 to a sum that started at +0
//    changes nothing. Averages divide (never multiply by a reciprocal) by r*s.
//  * backward passes scatter in the reference's offset order: for a fixed dx element, offsets
//    (r, s) ascending are windows (p, q) descending.
#include "pool/pool.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "common/memory.h"
#include "common/parallel.h"

namespace fastcnn {

namespace {

bool is_2x2_stride2(const Geometry2d& g) {
  return g.r == 2 && g.s == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0;
}

// The outputs o in [lo, hi) whose window offset `off` lands inside the input: 0 <= o*st + off -
// pad < size. Used to hoist bounds checks out of the inner loops of the general paths.
void valid_outputs(int64_t off, int64_t pad, int64_t st, int64_t size, int64_t outs, int64_t& lo,
                   int64_t& hi) {
  lo = pad > off ? ceil_div(pad - off, st) : 0;
  const int64_t end = size + pad - off;  // o*st < end
  hi = end > 0 ? std::min(outs, ceil_div(end, st)) : 0;
  if (hi < lo) hi = lo;
}

// The work of a pooling pass: a compare or add per window element of each output, and reading
// and writing x (or dx), y (or dy) and, for max pooling, argmax (8 bytes per output).
template <class T>
Work pool_work(const Geometry2d& g) {
  const double planes = static_cast<double>(g.n * g.c), pq = static_cast<double>(g.p * g.q);
  return Work{planes * pq * static_cast<double>(g.r * g.s),
              planes * (static_cast<double>(g.h * g.w) * sizeof(T) + pq * (sizeof(T) + 8))};
}

// Runs plane(x_plane_index) over all n*c planes on the pool of threads.
template <class T, class Plane>
void for_each_plane(const Geometry2d& g, Plane&& plane) {
  parallel_for(g.n * g.c, pool_work<T>(g), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) plane(i);
  });
}

// ---- 2x2 stride-2 unpadded fast path ---------------------------------------------------------
// Forward: block kernels handle exactly kBlock outputs of one output row (2*kBlock inputs from
// each of two input rows); the fixed trip count lets the compiler vectorise them, stride-2 loads
// becoming shuffles. A row is covered by blocks, the last one shifted back to overlap its
// predecessor; rows shorter than a block are staged through zero-padded stack buffers. So no
// scalar epilogue runs: with random data its data-dependent branches cost more than the vector
// body (measured 3x on 100x16x28x28), and DeepConvNet's rows are only 14, 7 and 3 outputs long.
// Backward rows have no compares across elements and vectorise as plain loops.
constexpr int64_t kBlock = 8;

template <class T, class I>
void max_block(const T* __restrict x0, const T* __restrict x1, T* __restrict y, I* __restrict am) {
  for (int64_t q = 0; q < kBlock; ++q) {
    // Offsets 0..3 = (0,0), (0,1), (1,0), (1,1). `best == best` is false once best is NaN.
    T best = x0[2 * q];
    int64_t idx = 0;
    const T b = x0[2 * q + 1], c = x1[2 * q], d = x1[2 * q + 1];
    bool take = !(b <= best) && best == best;
    best = take ? b : best;
    idx = take ? 1 : idx;
    take = !(c <= best) && best == best;
    best = take ? c : best;
    idx = take ? 2 : idx;
    take = !(d <= best) && best == best;
    best = take ? d : best;
    idx = take ? 3 : idx;
    y[q] = best;
    am[q] = static_cast<I>(idx);
  }
}

template <class T, class I>
void max_backward_row(const T* __restrict dy, const I* __restrict am, T* __restrict d0,
                      T* __restrict d1, int64_t Q) {
  for (int64_t q = 0; q < Q; ++q) {
    const T v = T(0) + dy[q];  // 0 + dy as in the reference (turns -0 into +0)
    // Narrowed to 32 bits so the compares vectorise without SSE4.1's 64-bit compare; values
    // outside 0..3 (rejected in Python) just leave the window's gradient zero. All selects
    // come before any store, or the compiler will not if-convert them.
    const int32_t a = static_cast<int32_t>(am[q]);
    const T o0 = a == 0 ? v : T(0), o1 = a == 1 ? v : T(0);
    const T o2 = a == 2 ? v : T(0), o3 = a == 3 ? v : T(0);
    d0[2 * q] = o0;
    d0[2 * q + 1] = o1;
    d1[2 * q] = o2;
    d1[2 * q + 1] = o3;
  }
}

template <class T>
void avg_block(const T* __restrict x0, const T* __restrict x1, T* __restrict y) {
  for (int64_t q = 0; q < kBlock; ++q) {
    y[q] = (T(0) + x0[2 * q] + x0[2 * q + 1] + x1[2 * q] + x1[2 * q + 1]) / T(4);
  }
}

template <class T>
void avg_backward_row(const T* __restrict dy, T* __restrict d0, T* __restrict d1, int64_t Q) {
  for (int64_t q = 0; q < Q; ++q) {
    const T v = T(0) + dy[q] / T(4);
    d0[2 * q] = v;
    d0[2 * q + 1] = v;
    d1[2 * q] = v;
    d1[2 * q + 1] = v;
  }
}

// Runs block(q) over outputs [q, q + kBlock) covering [0, Q) (Q >= kBlock). The last block is
// shifted back to end at Q, overlapping its predecessor: the fast paths write their outputs,
// never accumulate, so recomputing a few is harmless and no scalar epilogue is needed.
template <class Block>
void for_blocks(int64_t Q, Block&& block) {
  int64_t q = 0;
  for (; q + kBlock < Q; q += kBlock) block(q);
  block(Q - kBlock);
}

template <class T, class I>
void max_forward_2x2s2(const Geometry2d& g, const T* x, T* y, I* am) {
  const int64_t W = g.w, Q = g.q;
  for (int64_t p = 0; p < g.p; ++p) {
    const T* x0 = x + 2 * p * W;
    const T* x1 = x0 + W;
    T* yr = y + p * Q;
    I* ar = am + p * Q;
    if (Q >= kBlock) {
      for_blocks(Q, [&](int64_t q) { max_block(x0 + 2 * q, x1 + 2 * q, yr + q, ar + q); });
    } else {  // a short row (7x7 input: Q = 3) is staged through zero-padded buffers
      T t0[2 * kBlock] = {}, t1[2 * kBlock] = {}, ty[kBlock];
      I ta[kBlock];
      std::copy(x0, x0 + 2 * Q, t0);
      std::copy(x1, x1 + 2 * Q, t1);
      max_block(t0, t1, ty, ta);
      std::copy(ty, ty + Q, yr);
      std::copy(ta, ta + Q, ar);
    }
  }
}

template <class T>
void avg_forward_2x2s2(const Geometry2d& g, const T* x, T* y) {
  const int64_t W = g.w, Q = g.q;
  for (int64_t p = 0; p < g.p; ++p) {
    const T* x0 = x + 2 * p * W;
    const T* x1 = x0 + W;
    T* yr = y + p * Q;
    if (Q >= kBlock) {
      for_blocks(Q, [&](int64_t q) { avg_block(x0 + 2 * q, x1 + 2 * q, yr + q); });
    } else {
      T t0[2 * kBlock] = {}, t1[2 * kBlock] = {}, ty[kBlock];
      std::copy(x0, x0 + 2 * Q, t0);
      std::copy(x1, x1 + 2 * Q, t1);
      avg_block(t0, t1, ty);
      std::copy(ty, ty + Q, yr);
    }
  }
}

// Zeroes what no window covers: the last column for odd W, the last row for odd H.
template <class T>
void zero_uncovered_2x2s2(const Geometry2d& g, T* dx) {
  if (g.w > 2 * g.q) {
    for (int64_t i = 0; i < 2 * g.p; ++i) dx[i * g.w + g.w - 1] = T(0);
  }
  std::fill(dx + 2 * g.p * g.w, dx + g.h * g.w, T(0));
}

template <class T, class I>
void max_backward_2x2s2(const Geometry2d& g, const T* dy, const I* am, T* dx) {
  const int64_t W = g.w, Q = g.q;
  for (int64_t p = 0; p < g.p; ++p) {
    T* d0 = dx + 2 * p * W;
    T* d1 = d0 + W;
    max_backward_row(dy + p * Q, am + p * Q, d0, d1, Q);
  }
  zero_uncovered_2x2s2(g, dx);
}

template <class T>
void avg_backward_2x2s2(const Geometry2d& g, const T* dy, T* dx) {
  const int64_t W = g.w, Q = g.q;
  for (int64_t p = 0; p < g.p; ++p) {
    T* d0 = dx + 2 * p * W;
    T* d1 = d0 + W;
    avg_backward_row(dy + p * Q, d0, d1, Q);
  }
  zero_uncovered_2x2s2(g, dx);
}

// ---- max forward -----------------------------------------------------------------------------

template <class T, class I>
void max_forward_general(const Geometry2d& g, const T* x, T* y, I* am) {
  for (int64_t p = 0; p < g.p; ++p) {
    const int64_t i0 = p * g.sh - g.ph;
    const int64_t r_lo = std::max<int64_t>(0, -i0), r_hi = std::min(g.r, g.h - i0);
    for (int64_t q = 0; q < g.q; ++q) {
      const int64_t j0 = q * g.sw - g.pw;
      const int64_t s_lo = std::max<int64_t>(0, -j0), s_hi = std::min(g.s, g.w - j0);
      T best = -std::numeric_limits<T>::infinity();
      int64_t idx = 0;
      for (int64_t r = r_lo; r < r_hi; ++r) {
        const T* row = x + (i0 + r) * g.w + j0;
        for (int64_t s = s_lo; s < s_hi; ++s) {
          const T v = row[s];
          if (!(v <= best)) {
            best = v;
            idx = r * g.s + s;
            if (best != best) goto done;  // the first NaN wins
          }
        }
      }
    done:
      y[p * g.q + q] = best;
      am[p * g.q + q] = static_cast<I>(idx);
    }
  }
}

// ---- max backward ----------------------------------------------------------------------------

template <class T, class I>
void max_backward_general(const Geometry2d& g, const T* dy, const I* am, T* dx) {
  std::fill(dx, dx + g.h * g.w, T(0));
  const int64_t rs = g.r * g.s;
  for (int64_t p = g.p - 1; p >= 0; --p) {
    for (int64_t q = g.q - 1; q >= 0; --q) {
      const int64_t a = static_cast<int64_t>(am[p * g.q + q]);
      if (a < 0 || a >= rs) continue;  // Python rejects these; never index with them
      const int64_t i = p * g.sh + a / g.s - g.ph;
      const int64_t j = q * g.sw + a % g.s - g.pw;
      if (i < 0 || i >= g.h || j < 0 || j >= g.w) continue;  // a padded position
      dx[i * g.w + j] += dy[p * g.q + q];
    }
  }
}

// ---- average forward -------------------------------------------------------------------------

template <class T>
void avg_forward_general(const Geometry2d& g, const T* x, T* y) {
  const int64_t PQ = g.p * g.q;
  std::fill(y, y + PQ, T(0));
  for (int64_t r = 0; r < g.r; ++r) {
    int64_t p_lo, p_hi;
    valid_outputs(r, g.ph, g.sh, g.h, g.p, p_lo, p_hi);
    for (int64_t s = 0; s < g.s; ++s) {
      int64_t q_lo, q_hi;
      valid_outputs(s, g.pw, g.sw, g.w, g.q, q_lo, q_hi);
      for (int64_t p = p_lo; p < p_hi; ++p) {
        const T* xr = x + (p * g.sh + r - g.ph) * g.w + (s - g.pw);
        T* yr = y + p * g.q;
        if (g.sw == 1) {
          for (int64_t q = q_lo; q < q_hi; ++q) yr[q] += xr[q];
        } else {
          for (int64_t q = q_lo; q < q_hi; ++q) yr[q] += xr[q * g.sw];
        }
      }
    }
  }
  const T div = static_cast<T>(g.r * g.s);
  for (int64_t i = 0; i < PQ; ++i) y[i] = y[i] / div;
}

// ---- average backward ------------------------------------------------------------------------

// share is scratch for P*Q values of dy / (r*s).
template <class T>
void avg_backward_general(const Geometry2d& g, const T* dy, T* dx, T* share) {
  const int64_t PQ = g.p * g.q;
  const T div = static_cast<T>(g.r * g.s);
  for (int64_t i = 0; i < PQ; ++i) share[i] = dy[i] / div;
  std::fill(dx, dx + g.h * g.w, T(0));
  for (int64_t r = 0; r < g.r; ++r) {
    int64_t p_lo, p_hi;
    valid_outputs(r, g.ph, g.sh, g.h, g.p, p_lo, p_hi);
    for (int64_t s = 0; s < g.s; ++s) {
      int64_t q_lo, q_hi;
      valid_outputs(s, g.pw, g.sw, g.w, g.q, q_lo, q_hi);
      for (int64_t p = p_lo; p < p_hi; ++p) {
        T* dr = dx + (p * g.sh + r - g.ph) * g.w + (s - g.pw);
        const T* sr = share + p * g.q;
        if (g.sw == 1) {
          for (int64_t q = q_lo; q < q_hi; ++q) dr[q] += sr[q];
        } else {
          for (int64_t q = q_lo; q < q_hi; ++q) dr[q * g.sw] += sr[q];
        }
      }
    }
  }
}

}  // namespace

template <class T, class I>
void max_pool2d_forward(const Geometry2d& g, const T* x, T* y, I* argmax) {
  const int64_t HW = g.h * g.w, PQ = g.p * g.q;
  const bool fast = is_2x2_stride2(g);
  for_each_plane<T>(g, [&](int64_t i) {
    if (fast) {
      max_forward_2x2s2(g, x + i * HW, y + i * PQ, argmax + i * PQ);
    } else {
      max_forward_general(g, x + i * HW, y + i * PQ, argmax + i * PQ);
    }
  });
}

template <class T, class I>
void max_pool2d_backward(const Geometry2d& g, const T* dy, const I* argmax, T* dx) {
  const int64_t HW = g.h * g.w, PQ = g.p * g.q;
  const bool fast = is_2x2_stride2(g);
  for_each_plane<T>(g, [&](int64_t i) {
    if (fast) {
      max_backward_2x2s2(g, dy + i * PQ, argmax + i * PQ, dx + i * HW);
    } else {
      max_backward_general(g, dy + i * PQ, argmax + i * PQ, dx + i * HW);
    }
  });
}

template <class T>
void avg_pool2d_forward(const Geometry2d& g, const T* x, T* y) {
  const int64_t HW = g.h * g.w, PQ = g.p * g.q;
  const bool fast = is_2x2_stride2(g);
  for_each_plane<T>(g, [&](int64_t i) {
    if (fast) {
      avg_forward_2x2s2(g, x + i * HW, y + i * PQ);
    } else {
      avg_forward_general(g, x + i * HW, y + i * PQ);
    }
  });
}

template <class T>
void avg_pool2d_backward(const Geometry2d& g, const T* dy, T* dx) {
  const int64_t HW = g.h * g.w, PQ = g.p * g.q;
  if (is_2x2_stride2(g)) {
    for_each_plane<T>(g, [&](int64_t i) { avg_backward_2x2s2(g, dy + i * PQ, dx + i * HW); });
    return;
  }
  parallel_for(g.n * g.c, pool_work<T>(g), [&](int64_t begin, int64_t end) {
    AlignedBuffer<T> share(PQ);  // per thread, per call
    for (int64_t i = begin; i < end; ++i) {
      avg_backward_general(g, dy + i * PQ, dx + i * HW, share.data());
    }
  });
}

#define FASTCNN_INSTANTIATE_MAX_POOL(T, I)                                     \
  template void max_pool2d_forward<T, I>(const Geometry2d&, const T*, T*, I*); \
  template void max_pool2d_backward<T, I>(const Geometry2d&, const T*, const I*, T*);
#define FASTCNN_INSTANTIATE_POOL(T)                                     \
  FASTCNN_INSTANTIATE_MAX_POOL(T, int64_t)                              \
  FASTCNN_INSTANTIATE_MAX_POOL(T, uint8_t)                              \
  template void avg_pool2d_forward<T>(const Geometry2d&, const T*, T*); \
  template void avg_pool2d_backward<T>(const Geometry2d&, const T*, T*);

FASTCNN_INSTANTIATE_POOL(float)
FASTCNN_INSTANTIATE_POOL(double)

#undef FASTCNN_INSTANTIATE_POOL
#undef FASTCNN_INSTANTIATE_MAX_POOL

}  // namespace fastcnn
