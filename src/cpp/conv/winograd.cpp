// The Winograd F(2x2, 3x3) drivers (see winograd.h): forward and weight gradient. Work runs in
// blocks of tile rows sized so that a block's transformed input and products (16 x tiles x
// (C + K) values) stay in L2. The forward's threads split the batch's rows of tiles, and each
// output is computed by the same operations in any block; the weight gradient sums fixed
// chunks of images in order. Results are the same bits for any thread count.
#include "conv/winograd.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/cpu.h"
#include "common/memory.h"
#include "common/parallel.h"
#include "common/tuning.h"
#include "conv/conv.h"
#include "conv/conv_internal.h"
#include "conv/conv_kernels.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack.h"

namespace fastcnn {

// U = G g G^T for filters k0 <= k < k1: u[xi*C*K + c*K + k] (for each point xi, a C x K
// matrix, the B operand of that point's GEMM).
template <class T>
void transform_weights(const Geometry2d& g, const T* w, int64_t k0, int64_t k1, T* u) {
  const int64_t C = g.c, K = g.k, plane = C * K;
  const T half = T(0.5);
  for (int64_t k = k0; k < k1; ++k) {
    for (int64_t c = 0; c < C; ++c) {
      const T* f = w + (k * C + c) * 9;
      T gg[4][3];  // G g: rows of the filter combined
      for (int j = 0; j < 3; ++j) {
        gg[0][j] = f[j];
        gg[1][j] = half * (f[j] + f[3 + j] + f[6 + j]);
        gg[2][j] = half * (f[j] - f[3 + j] + f[6 + j]);
        gg[3][j] = f[6 + j];
      }
      T* dst = u + c * K + k;
      for (int i = 0; i < 4; ++i) {  // (G g) G^T: columns combined
        dst[(4 * i + 0) * plane] = gg[i][0];
        dst[(4 * i + 1) * plane] = half * (gg[i][0] + gg[i][1] + gg[i][2]);
        dst[(4 * i + 2) * plane] = half * (gg[i][0] - gg[i][1] + gg[i][2]);
        dst[(4 * i + 3) * plane] = gg[i][2];
      }
    }
  }
}
template void transform_weights<float>(const Geometry2d&, const float*, int64_t, int64_t, float*);
template void transform_weights<double>(const Geometry2d&, const double*, int64_t, int64_t,
                                        double*);

namespace {

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

// The tiling of a convolution: th x tw tiles per image, pixel-major input rows wp pixels wide
// (the padded width, rounded up to whole tiles), and blocks of up to block_rows tile rows
// (about 256 KiB of transformed input and products, 16 points x tiles x (C + K) values, but
// at least min_tiles tiles: the weight gradient's GEMMs reduce over a block's tiles).
template <class T>
struct WinogradPlan {
  int64_t th, tw, wp, block_rows, max_tiles;
  WinogradPlan(const Geometry2d& g, int64_t k_padded, int64_t min_tiles)
      : th(ceil_div(g.p, 2)), tw(ceil_div(g.q, 2)), wp(2 * ceil_div(g.q, 2) + 2) {
    const int64_t block_tiles =
        std::max<int64_t>(min_tiles, tuning::kWinogradBlockBytes / static_cast<int64_t>(sizeof(T)) /
                                         (16 * (g.c + k_padded)));
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
// a pixel-major buffer of Q x K rows, which of them exist in edge[t].
template <class T>
struct TileBlock {
  const Geometry2d& g;
  const WinogradPlan<T>& plan;
  AlignedBuffer<T> x;  // pixel-major input rows: a block spans at most block_rows images,
                       // each needing 2 rows below its tile rows' 2 each
  std::vector<int64_t> xoff, yoff;
  std::vector<uint8_t> edge;
  std::vector<Segment> segments;
  int64_t ntiles = 0;

  TileBlock(const Geometry2d& g_, const WinogradPlan<T>& plan_)
      : g(g_),
        plan(plan_),
        x(4 * plan_.block_rows * plan_.wp * g_.c),
        xoff(static_cast<std::size_t>(plan_.max_tiles)),
        yoff(static_cast<std::size_t>(plan_.max_tiles)),
        edge(static_cast<std::size_t>(plan_.max_tiles)) {}

  // Lays out tile rows [b0, b1) of the batch (row r is tile row r % th of image r / th) and
  // copies their input rows from images xs. False when an input value is inf or NaN.
  bool load(const ConvKernels<T>& kernels, const T* xs, int64_t b0, int64_t b1) {
    const int64_t th = plan.th, tw = plan.tw, wp = plan.wp, C = g.c, Q = g.q, K = g.k;
    segments.clear();
    ntiles = 0;
    int64_t xrow = 0, orow = 0;
    bool finite = true;
    for (int64_t r = b0; r < b1;) {
      const int64_t n = r / th, ta = r % th, tb = std::min(th, ta + (b1 - r));
      finite &= copy_rows_pixel_major(kernels, g, wp, xs + n * C * g.h * g.w, 2 * ta, 2 * tb + 2,
                                      x.data() + xrow * wp * C);
      for (int64_t tr = ta; tr < tb; ++tr) {
        for (int64_t tc = 0; tc < tw; ++tc, ++ntiles) {
          xoff[ntiles] = ((xrow + 2 * (tr - ta)) * wp + 2 * tc) * C;
          yoff[ntiles] = ((orow + 2 * (tr - ta)) * Q + 2 * tc) * K;
          edge[ntiles] =
              static_cast<uint8_t>((2 * tc + 1 < Q ? 1 : 0) | (2 * tr + 1 < g.p ? 2 : 0));
        }
      }
      segments.push_back({n, ta, tb, orow});
      xrow += 2 * (tb - ta) + 2;
      orow += 2 * (tb - ta);
      r += tb - ta;
    }
    return finite;
  }

  // Output rows [p0, p1) of segment s (rows past P do not exist).
  std::pair<int64_t, int64_t> output_rows(const Segment& s) const {
    return {2 * s.ta, std::min(g.p, 2 * s.tb)};
  }
};

// FASTCNN_WINOGRAD=0 (or false, off, no, in any case) turns it off at start-up.
std::atomic<bool> g_winograd{[] {
  const char* env = std::getenv("FASTCNN_WINOGRAD");
  if (env == nullptr) return true;
  std::string value(env);
  for (char& ch : value) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return !(value == "0" || value == "false" || value == "off" || value == "no");
}()};

std::atomic<int64_t> g_forward_min_tiles{tuning::kWinogradForwardMinTiles};
std::atomic<int64_t> g_weights_min_tiles{tuning::kWinogradWeightsMinTiles};

}  // namespace

WinogradMinTiles get_winograd_min_tiles() {
  return {g_forward_min_tiles.load(std::memory_order_relaxed),
          g_weights_min_tiles.load(std::memory_order_relaxed)};
}
void set_winograd_min_tiles(WinogradMinTiles t) {
  if (t.forward < 0 || t.weights < 0) {
    throw std::invalid_argument("set_winograd_min_tiles: tile counts must be >= 0");
  }
  g_forward_min_tiles.store(t.forward, std::memory_order_relaxed);
  g_weights_min_tiles.store(t.weights, std::memory_order_relaxed);
}

bool winograd_enabled() { return g_winograd.load(std::memory_order_relaxed); }
void set_winograd_enabled(bool enabled) { g_winograd.store(enabled, std::memory_order_relaxed); }

bool winograd_supports(const Geometry2d& g) {
  return winograd_enabled() && g.r == 3 && g.s == 3 && g.sh == 1 && g.sw == 1;
}

// 2x2 output tiles of the whole batch.
int64_t winograd_tiles(const Geometry2d& g) { return g.n * ceil_div(g.p, 2) * ceil_div(g.q, 2); }

namespace {
bool winograd_preferred(const Geometry2d& g) {
  return winograd_supports(g) && active_isa() != Isa::generic &&
         g.c >= tuning::kWinogradMinChannels && g.k >= tuning::kWinogradMinChannels;
}
}  // namespace

bool winograd_forward_preferred(const Geometry2d& g) {
  return winograd_preferred(g) && g.k >= tuning::kWinogradForwardMinOutputChannels &&
         winograd_tiles(g) >= get_winograd_min_tiles().forward;
}
bool winograd_weights_preferred(const Geometry2d& g) {
  return winograd_preferred(g) && g.c * g.k >= tuning::kWinogradWeightsMinChannelPairs &&
         winograd_tiles(g) >= get_winograd_min_tiles().weights;
}

template <class T>
bool conv2d_forward_winograd(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                             bool relu) {
  const int64_t C = g.c, K = g.k, P = g.p, Q = g.q;
  const WinogradPlan<T> plan(g, K, 1);
  const GemmConfig<T> cfg = balanced_kc(gemm_config_for(gemm_config<T>(), plan.max_tiles, K, 8), C);
  const ConvKernels<T> kernels = conv_kernels<T>();

  AlignedBuffer<T> u(checked_mul(16 * C, K, "conv2d Winograd weights"));
  std::vector<PrepackedPanels<T>> upack(16);
  // Weights: ~100 flops per filter plane into 16 values; then 16 packed copies of U.
  const double planes = static_cast<double>(K * C);
  parallel_for(K, Work{100 * planes, 25 * sizeof(T) * planes},
               [&](int64_t k0, int64_t k1) { transform_weights(g, w, k0, k1, u.data()); });
  parallel_for(16, Work{0, 32 * sizeof(T) * planes}, [&](int64_t x0, int64_t x1) {
    for (int64_t xi = x0; xi < x1; ++xi)
      upack[xi] = prepack_b(cfg, StridedMatrix<T>{u.data() + xi * C * K, K, 1}, C, K);
  });

  const int64_t rows = g.n * plan.th;
  const int n_parts = threads_for(rows, conv_work<T>(g));
  std::vector<char> finite(static_cast<std::size_t>(n_parts), 1);
  parallel_run(n_parts, [&](int part, int parts) {
    int64_t u0, u1;
    partition(rows, part, parts, u0, u1);
    if (u0 >= u1) return;
    TileBlock<T> blk(g, plan);
    AlignedBuffer<T> v(16 * plan.max_tiles * C), m(16 * plan.max_tiles * K),
        yt(2 * plan.block_rows * Q * K);
    for (int64_t b0 = u0; b0 < u1; b0 += plan.block_rows) {
      if (!blk.load(kernels, x, b0, std::min(u1, b0 + plan.block_rows))) {
        finite[part] = 0;
        return;
      }
      const int64_t ntiles = blk.ntiles, vs = ntiles * C, ms = ntiles * K;
      kernels.winograd_input(C, ntiles, blk.x.data(), blk.xoff.data(), plan.wp * C, v.data(), vs);
      // M[xi] (tiles x K) = V[xi] (tiles x C, read in place) . U[xi] (packed).
      for (int xi = 0; xi < 16; ++xi) {
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
      kernels.winograd_output(K, ntiles, m.data(), ms, yt.data(), blk.yoff.data(), blk.edge.data(),
                              Q * K);
      // Finite inputs can still overflow inside the transforms (values near the type's
      // maximum): a non-finite output also hands the call to the direct form.
      for (const Segment& s : blk.segments) {
        const auto [p0, p1] = blk.output_rows(s);
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

// dW[k, c] = G^T dU G, from the summed products dU[xi] (C x K): du[xi*C*K + c*K + k].
template <class T>
void gradient_to_weights(const Geometry2d& g, const T* du, T* dw) {
  const int64_t C = g.c, K = g.k, plane = C * K;
  const T half = T(0.5);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t k = 0; k < K; ++k) {
      const T* src = du + c * K + k;
      T r[3][4];  // G^T dU: rows combined
      for (int j = 0; j < 4; ++j) {
        const T u0 = src[j * plane], u1 = src[(4 + j) * plane];
        const T u2 = src[(8 + j) * plane], u3 = src[(12 + j) * plane];
        r[0][j] = u0 + half * (u1 + u2);
        r[1][j] = half * (u1 - u2);
        r[2][j] = half * (u1 + u2) + u3;
      }
      T* out = dw + (k * C + c) * 9;
      for (int i = 0; i < 3; ++i) {  // (G^T dU) G: columns combined
        out[3 * i + 0] = r[i][0] + half * (r[i][1] + r[i][2]);
        out[3 * i + 1] = half * (r[i][1] - r[i][2]);
        out[3 * i + 2] = half * (r[i][1] + r[i][2]) + r[i][3];
      }
    }
  }
}
template void gradient_to_weights<float>(const Geometry2d&, const float*, float*);
template void gradient_to_weights<double>(const Geometry2d&, const double*, double*);

template <class T>
bool conv2d_backward_weights_winograd(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db) {
  const int64_t C = g.c, K = g.k, P = g.p, Q = g.q;
  const GemmConfig<T> cfg = gemm_config_for(gemm_config<T>(), C, K, 8);
  const int64_t nr = cfg.nr, kpad = round_up(K, nr);
  const WinogradPlan<T> plan(g, kpad, tuning::kWinogradWeightsMinBlockTiles);
  const ConvKernels<T> kernels = conv_kernels<T>();
  // A chunk's partial sums are dU (16 x C x K), then db (K).
  const int64_t du_size = 16 * C * K;
  AlignedBuffer<T> sum(du_size + K);
  const Work work = conv_work<T>(g);
  const bool finite = sum_over_image_chunks<T>(
      g.n, du_size + K, sum.data(), work, [&](int64_t i0, int64_t i1, T* du) {
        TileBlock<T> blk(g, plan);
        AlignedBuffer<T> v(16 * plan.max_tiles * C), z(16 * plan.max_tiles * kpad),
            dyt(2 * plan.block_rows * Q * K);
        bias_gradient(g, dy, i0, i1, du + du_size);
        for (int64_t b0 = i0 * plan.th; b0 < i1 * plan.th; b0 += plan.block_rows) {
          bool ok = blk.load(kernels, x, b0, std::min(i1 * plan.th, b0 + plan.block_rows));
          for (const Segment& s : blk.segments) {
            const auto [p0, p1] = blk.output_rows(s);
            ok &= kernels.to_pixel_major(dy + (s.n * K * P + p0) * Q, K, (p1 - p0) * Q, P * Q,
                                         dyt.data() + s.orow * Q * K, K, Q, Q * K);
          }
          if (!ok) return false;
          const int64_t ntiles = blk.ntiles, vs = ntiles * C, zs = ntiles * kpad;
          kernels.winograd_input(C, ntiles, blk.x.data(), blk.xoff.data(), plan.wp * C, v.data(),
                                 vs);
          kernels.winograd_dy(K, ntiles, dyt.data(), blk.yoff.data(), blk.edge.data(), Q * K,
                              z.data(), zs, nr);
          // dU[xi] (C x K) += V[xi]^T (C x tiles, read in place) . Z[xi] (tiles x K, packed);
          // the chunk's first block writes dU.
          const T beta = b0 == i0 * plan.th ? T(0) : T(1);
          for (int xi = 0; xi < 16; ++xi) {
            const T* vx = v.data() + xi * vs;
            const T* zx = z.data() + xi * zs;
            T* dux = du + xi * C * K;
            for_each_tile(C, K, cfg.mr, nr, [&](int64_t r0, int64_t j0, int64_t mr, int64_t nc) {
              cfg.ukernel_strided_a(ntiles, vx + r0, 1, C, zx + j0 * ntiles, dux + r0 * K + j0, K,
                                    T(1), beta, mr, nc);
            });
          }
        }
        return true;
      });
  if (!finite) return false;
  gradient_to_weights(g, sum.data(), dw);
  // Finite inputs can still overflow inside the transforms (values near the type's maximum);
  // the direct form then decides what the results are.
  if (!all_finite(dw, 9 * C * K)) return false;
  if (db != nullptr) std::copy(sum.data() + du_size, sum.data() + du_size + K, db);
  return true;
}

template bool conv2d_forward_winograd<float>(const Geometry2d&, const float*, const float*,
                                             const float*, float*, bool);
template bool conv2d_forward_winograd<double>(const Geometry2d&, const double*, const double*,
                                              const double*, double*, bool);
template bool conv2d_backward_weights_winograd<float>(const Geometry2d&, const float*, const float*,
                                                      float*, float*);
template bool conv2d_backward_weights_winograd<double>(const Geometry2d&, const double*,
                                                       const double*, double*, double*);

}  // namespace fastcnn
