// What Winograd F(2x2, 3x3) and F(4x4, 3x3) share: the tiling of a batch into blocks of
// M x M output tiles (pixel-major input rows, each tile's window and output offsets), and
// the forward driver over it, which only the transforms tell apart. Internal to
// winograd.cpp and winograd4.cpp; the algorithm choice is in algorithms.cpp.
//
// The forward, per block of output tiles (n = M + 2, the window's side; n*n transform points):
//   1. the input rows are copied pixel-major (HWC) with their zero padding;
//   2. each tile's n x n window is transformed (n*n points per channel);
//   3. n*n GEMMs, one per point xi: M[xi] (tiles x K) = V[xi] (tiles x C) . U[xi] (C x K),
//      where U are the transformed weights, packed once per call;
//   4. each tile's M x M output is transformed back and copied into y with the bias (and
//      ReLU).
// The threads split the batch's rows of tiles, and each output is computed by the same
// operations in any block: the same bits for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/geometry.h"
#include "common/memory.h"
#include "common/parallel.h"
#include "common/tuning.h"
#include "conv/conv_internal.h"
#include "conv/conv_kernels.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack.h"

namespace fastcnn::winograd_impl {

// Rows [r0, r1) of image xn (C x H x W) zero-padded (ph rows above, pw columns left, zeros
// up to wp columns and below), pixel-major: dst[((r - r0)*wp + j)*C + c]. Returns false when
// a copied value is infinite or NaN.
template <class T>
bool copy_rows_pixel_major(const ConvKernels<T>& kernels, const Geometry2d& g, int64_t wp,
                           const T* xn, int64_t r0, int64_t r1, T* dst) {
  const int64_t C = g.c, row = wp * C;
  // Image rows [h0, h1) land in rows [first, last) of dst; the rest is zero.
  const int64_t h0 = std::clamp<int64_t>(r0 - g.ph, 0, g.h);
  const int64_t h1 = std::clamp<int64_t>(r1 - g.ph, 0, g.h);
  if (h1 <= h0) {  // all padding
    std::fill(dst, dst + (r1 - r0) * row, T(0));
    return true;
  }
  const int64_t first = h0 + g.ph - r0, last = h1 + g.ph - r0;
  std::fill(dst, dst + first * row, T(0));
  std::fill(dst + last * row, dst + (r1 - r0) * row, T(0));
  for (int64_t r = first; r < last; ++r) {
    std::fill(dst + r * row, dst + r * row + g.pw * C, T(0));
    std::fill(dst + r * row + (g.pw + g.w) * C, dst + (r + 1) * row, T(0));
  }
  return kernels.to_pixel_major(xn + h0 * g.w, C, (h1 - h0) * g.w, g.h * g.w,
                                dst + first * row + g.pw * C, C, g.w, row);
}

// The tiling of a convolution into M x M output tiles: th x tw tiles per image, pixel-major
// input rows wp pixels wide (the padded width, rounded up to whole tiles), and blocks of up to
// block_rows tile rows (about tuning::kWinogradBlockBytes of transformed input and products,
// points x tiles x (C + K) values, but at least min_tiles tiles: the weight gradient's GEMMs
// reduce over a block's tiles). F(4x4) measured no faster with blocks of 512 KiB or 1 MiB.
template <class T>
struct WinogradPlan {
  int64_t m, points, th, tw, wp, block_rows, max_tiles;
  WinogradPlan(const Geometry2d& g, int64_t m_, int64_t k_padded, int64_t min_tiles)
      : m(m_),
        points((m_ + 2) * (m_ + 2)),
        th(ceil_div(g.p, m_)),
        tw(ceil_div(g.q, m_)),
        wp(m_ * ceil_div(g.q, m_) + 2) {
    const int64_t block_tiles =
        std::max<int64_t>(min_tiles, tuning::kWinogradBlockBytes / static_cast<int64_t>(sizeof(T)) /
                                         (points * (g.c + k_padded)));
    block_rows = std::clamp<int64_t>(block_tiles / tw, 1, std::max<int64_t>(th * g.n, 1));
    max_tiles = block_rows * tw;
  }
};

// A block's run of tile rows [ta, tb) of image n: its output rows start at row orow of the
// block's pixel-major output.
struct Segment {
  int64_t n, ta, tb, orow;
};

// One thread's scratch for blocks of tiles, and the layout of the current block: tile t's
// input window at x.data() + xoff[t], its output (or output gradient) pixels at yoff[t] in
// a pixel-major buffer of Q x K rows, and how many of them exist in edge[t]:
// (columns - 1) | (rows - 1) << log2(M) (for M = 2, bit 0: a right column, bit 1: a bottom
// row).
template <class T>
struct TileBlock {
  const Geometry2d& g;
  const WinogradPlan<T>& plan;
  AlignedBuffer<T> x;  // pixel-major input rows: a block spans at most block_rows images,
                       // each needing 2 rows below its tile rows' M each
  std::vector<int64_t> xoff, yoff;
  std::vector<uint8_t> edge;
  std::vector<Segment> segments;
  int64_t ntiles = 0;

  TileBlock(const Geometry2d& g_, const WinogradPlan<T>& plan_)
      : g(g_),
        plan(plan_),
        x((plan_.m + 2) * plan_.block_rows * plan_.wp * g_.c),
        xoff(static_cast<std::size_t>(plan_.max_tiles)),
        yoff(static_cast<std::size_t>(plan_.max_tiles)),
        edge(static_cast<std::size_t>(plan_.max_tiles)) {}

  // Lays out tile rows [b0, b1) of the batch (row r is tile row r % th of image r / th) and
  // copies their input rows from images xs. False when an input value is inf or NaN.
  bool load(const ConvKernels<T>& kernels, const T* xs, int64_t b0, int64_t b1) {
    const int64_t th = plan.th, tw = plan.tw, wp = plan.wp, M = plan.m, C = g.c, Q = g.q;
    const int64_t K = g.k;
    const int shift = M == 2 ? 1 : 2;
    segments.clear();
    ntiles = 0;
    int64_t xrow = 0, orow = 0;
    bool finite = true;
    for (int64_t r = b0; r < b1;) {
      const int64_t n = r / th, ta = r % th, tb = std::min(th, ta + (b1 - r));
      finite &= copy_rows_pixel_major(kernels, g, wp, xs + n * C * g.h * g.w, M * ta, M * tb + 2,
                                      x.data() + xrow * wp * C);
      for (int64_t tr = ta; tr < tb; ++tr) {
        const int64_t rows = std::min(M, g.p - M * tr);
        for (int64_t tc = 0; tc < tw; ++tc, ++ntiles) {
          const int64_t cols = std::min(M, Q - M * tc);
          xoff[ntiles] = ((xrow + M * (tr - ta)) * wp + M * tc) * C;
          yoff[ntiles] = ((orow + M * (tr - ta)) * Q + M * tc) * K;
          edge[ntiles] = static_cast<uint8_t>((cols - 1) | (rows - 1) << shift);
        }
      }
      segments.push_back({n, ta, tb, orow});
      xrow += M * (tb - ta) + 2;
      orow += M * (tb - ta);
      r += tb - ta;
    }
    return finite;
  }

  // Output rows [p0, p1) of segment s (rows past P do not exist).
  std::pair<int64_t, int64_t> output_rows(const Segment& s) const {
    return {plan.m * s.ta, std::min(g.p, plan.m * s.tb)};
  }
};

// Outputs [p0, p1) of image n whose 3x3 input window (padding included) is all zeros get a sum
// of exactly zero, as in the direct form, before the bias (and ReLU) are added: ``yt`` holds
// those rows pixel-major, Q pixels of K values each. F(2x2)'s transforms keep such sums
// exactly zero by themselves (each of its transformed points reads only its own window's
// inputs), but F(4x4)'s dense ones leave rounding residue of either sign when other inputs of
// the tile are not zero. Zero windows are common (image backgrounds, ReLU outputs), and a
// residue there flips a following ReLU or moves a max pool's argmax against the oracle: a bias
// gradient then differs by whole pixels' gradients (20 % on DeepConvNet at initialisation).
// The input rows are read channel by channel, as x holds them (contiguous, vectorised; the
// block just copied them, so they are in cache).
template <class T>
void zero_empty_windows(const Geometry2d& g, const T* x, int64_t n, int64_t p0, int64_t p1, T* yt) {
  const int64_t C = g.c, H = g.h, W = g.w, Q = g.q, K = g.k;
  const int64_t h0 = p0 - g.ph, rows = p1 - p0 + 2;  // input rows h0 .. h0 + rows - 1
  const int64_t r0 = std::max<int64_t>(0, -h0), r1 = std::min(rows, H - h0);
  std::vector<uint8_t> any(static_cast<std::size_t>(rows * W), 0);  // OR over channels
  for (int64_t c = 0; c < C; ++c) {
    const T* xc = x + ((n * C + c) * H + h0) * W;
    for (int64_t i = r0 * W; i < r1 * W; ++i) any[i] |= static_cast<uint8_t>(xc[i] != T(0));
  }
  if (std::find(any.begin() + r0 * W, any.begin() + r1 * W, uint8_t(0)) == any.begin() + r1 * W &&
      r0 == 0 && r1 == rows) {
    return;  // every input pixel nonzero: no window is empty
  }
  std::vector<uint8_t> col(static_cast<std::size_t>(W + 2 * g.pw + 2), 0);  // padded columns
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* a = any.data() + (p - p0) * W;  // input rows p - ph .. p - ph + 2
    for (int64_t w = 0; w < W; ++w) col[g.pw + w] = a[w] | a[W + w] | a[2 * W + w];
    T* row = yt + (p - p0) * Q * K;
    for (int64_t q = 0; q < Q; ++q) {
      if ((col[q] | col[q + 1] | col[q + 2]) == 0) std::fill(row + q * K, row + (q + 1) * K, T(0));
    }
  }
}

// conv2d_forward (see conv.h) by Winograd F(M x M, 3x3) for finite weights w: transform(g, w,
// k0, k1, u) writes the transformed filters k0 <= k < k1 as u[xi*C*K + c*K + k]; input and
// output are the tile transforms (conv_kernels.h). Declines (returns false, with y partly
// written) when x holds an infinity or NaN, or a result overflows.
template <class T, class Transform>
bool forward(const Geometry2d& g, int64_t M, const T* x, const T* w, const T* b, T* y, bool relu,
             Transform transform, FASTCNN_DECLARE_WINOGRAD_INPUT((*input), T),
             FASTCNN_DECLARE_WINOGRAD_OUTPUT((*output), T)) {
  const int64_t C = g.c, K = g.k, P = g.p, Q = g.q;
  const WinogradPlan<T> plan(g, M, K, 1);
  const int64_t points = plan.points;
  const GemmConfig<T> cfg = balanced_kc(gemm_config_for(gemm_config<T>(), plan.max_tiles, K, 8), C);
  const ConvKernels<T> kernels = conv_kernels<T>();

  AlignedBuffer<T> u(checked_mul(points * C, K, "conv2d Winograd weights"));
  // Weights: ~6 flops per transformed value of a filter plane; then a packed copy of U per
  // point, all in one buffer allocated here (a block allocated on a helper thread would join
  // this thread's scratch cache when freed, and the helper allocate again on every call).
  const int64_t upanel = prepacked_size(K, cfg.nr, C);
  AlignedBuffer<T> upacked(checked_mul(points, upanel, "conv2d Winograd packed weights"));
  std::vector<PanelBlocks<T>> upack(static_cast<std::size_t>(points));
  const double planes = static_cast<double>(K * C);
  parallel_for(K, Work{6.0 * points * planes, (9 + points) * sizeof(T) * planes},
               [&](int64_t k0, int64_t k1) { transform(g, w, k0, k1, u.data()); });
  parallel_for(points, Work{0, 2.0 * points * sizeof(T) * planes}, [&](int64_t x0, int64_t x1) {
    for (int64_t xi = x0; xi < x1; ++xi) {
      upack[xi] = prepack_b_into(cfg, StridedMatrix<T>{u.data() + xi * C * K, K, 1}, C, K,
                                 upacked.data() + xi * upanel);
    }
  });

  const int64_t rows = g.n * plan.th;
  const int n_parts = threads_for(rows, conv_work<T>(g));
  std::vector<char> finite(static_cast<std::size_t>(n_parts), 1);
  parallel_run(n_parts, [&](int part, int parts) {
    int64_t u0, u1;
    partition(rows, part, parts, u0, u1);
    if (u0 >= u1) return;
    TileBlock<T> blk(g, plan);
    AlignedBuffer<T> v(points * plan.max_tiles * C), m(points * plan.max_tiles * K),
        yt(M * plan.block_rows * Q * K);
    for (int64_t b0 = u0; b0 < u1; b0 += plan.block_rows) {
      if (!blk.load(kernels, x, b0, std::min(u1, b0 + plan.block_rows))) {
        finite[part] = 0;
        return;
      }
      const int64_t ntiles = blk.ntiles, vs = ntiles * C, ms = ntiles * K;
      input(C, ntiles, blk.x.data(), blk.xoff.data(), plan.wp * C, v.data(), vs);
      // M[xi] (tiles x K) = V[xi] (tiles x C, read in place) . U[xi] (packed).
      for (int64_t xi = 0; xi < points; ++xi) {
        const T* vx = v.data() + xi * vs;
        T* mx = m.data() + xi * ms;
        for_each_k_block(C, cfg.kc, T(0), [&](int64_t pc, int64_t kc, T beta) {
          for_each_tile(
              ntiles, K, cfg.mr, cfg.nr, [&](int64_t i0, int64_t j0, int64_t mr, int64_t nr) {
                cfg.ukernel_strided_a(kc, vx + i0 * C + pc, C, 1, upack[xi].block(j0, pc, kc),
                                      mx + i0 * K + j0, K, T(1), beta, mr, nr);
              });
        });
      }
      output(K, ntiles, m.data(), ms, yt.data(), blk.yoff.data(), blk.edge.data(), Q * K);
      // Finite inputs can still overflow inside the transforms (values near the type's
      // maximum): a non-finite output also hands the call to the direct form.
      for (const Segment& s : blk.segments) {
        const auto [p0, p1] = blk.output_rows(s);
        if (M > 2) zero_empty_windows(g, x, s.n, p0, p1, yt.data() + s.orow * Q * K);
        if (!kernels.from_pixel_major(yt.data() + s.orow * Q * K, (p1 - p0) * Q, K, K, b, relu,
                                      y + (s.n * K * P + p0) * Q, P * Q)) {
          finite[part] = 0;
          return;
        }
      }
    }
  });
  return std::all_of(finite.begin(), finite.end(), [](char ok) { return ok != 0; });
}

}  // namespace fastcnn::winograd_impl
