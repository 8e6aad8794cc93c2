// The Winograd F(2x2, 3x3) drivers (see winograd.h): forward and weight gradient, on the
// tiling of winograd_tiles.h (blocks of tile rows whose transformed input and products, 16 x
// tiles x (C + K) values, stay in L2). The forward is winograd_impl::forward with this
// file's weight transform; the weight gradient sums fixed chunks of images in order. Results
// are the same bits for any thread count.
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
#include "conv/winograd_tiles.h"
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

using winograd_impl::Segment;
using winograd_impl::TileBlock;
using winograd_impl::WinogradPlan;

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
  const ConvKernels<T> kernels = conv_kernels<T>();
  return winograd_impl::forward(g, 2, x, w, b, y, relu, &transform_weights<T>,
                                kernels.winograd_input, kernels.winograd_output);
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
  const WinogradPlan<T> plan(g, 2, kpad, tuning::kWinogradWeightsMinBlockTiles);
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
