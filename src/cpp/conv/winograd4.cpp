// The Winograd F(4x4, 3x3) forward (see winograd4.h): its weight transform and its choice; the
// tiling, threads and GEMMs are winograd_tiles.h's, the tile transforms conv_kernels'.
#include "conv/winograd4.h"

#include "common/cpu.h"
#include "common/geometry.h"
#include "common/memory.h"
#include "common/tuning.h"
#include "conv/conv_kernels.h"
#include "conv/winograd.h"
#include "conv/winograd_tiles.h"

namespace fastcnn {

namespace {

// G (6 x 3) applied to one column (or row) g0, g1, g2 of a filter:
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
// All of F(4x4)'s fractions are here, computed in double whatever T (once per call, C*K
// filters), so the float32 weights are each rounded once.
inline void weights_6(double g0, double g1, double g2, double* out) {
  out[0] = g0 / 4;
  out[1] = -(g0 + g1 + g2) / 6;
  out[2] = -(g0 - g1 + g2) / 6;
  out[3] = (g0 + 2 * g1 + 4 * g2) / 24;
  out[4] = (g0 - 2 * g1 + 4 * g2) / 24;
  out[5] = g2;
}

}  // namespace

template <class T>
void transform_weights_f4(const Geometry2d& g, const T* w, int64_t k0, int64_t k1, T* u) {
  const int64_t C = g.c, K = g.k, plane = C * K;
  for (int64_t k = k0; k < k1; ++k) {
    for (int64_t c = 0; c < C; ++c) {
      const T* f = w + (k * C + c) * 9;
      double gg[6][3];  // G g: rows of the filter combined, column by column
      for (int j = 0; j < 3; ++j) {
        double col[6];
        weights_6(f[j], f[3 + j], f[6 + j], col);
        for (int i = 0; i < 6; ++i) gg[i][j] = col[i];
      }
      T* dst = u + c * K + k;
      for (int i = 0; i < 6; ++i) {  // (G g) G^T: columns combined
        double row[6];
        weights_6(gg[i][0], gg[i][1], gg[i][2], row);
        for (int j = 0; j < 6; ++j) dst[(6 * i + j) * plane] = static_cast<T>(row[j]);
      }
    }
  }
}
template void transform_weights_f4<float>(const Geometry2d&, const float*, int64_t, int64_t,
                                          float*);
template void transform_weights_f4<double>(const Geometry2d&, const double*, int64_t, int64_t,
                                           double*);

bool winograd4_supports(const Geometry2d& g) { return winograd_supports(g); }

bool winograd4_forward_preferred(const Geometry2d& g) {
  if (!winograd_forward_preferred(g)) return false;  // F(2x2)'s channel and ISA rules
  const int64_t tiles4 = g.n * ceil_div(g.p, 4) * ceil_div(g.q, 4);
  const int64_t tiles2 = g.n * ceil_div(g.p, 2) * ceil_div(g.q, 2);
  // Multiplies: 36 per 4x4 tile against 16 per 2x2 tile (edge tiles count whole).
  return tiles4 >= tuning::kWinogradF4ForwardMinTiles &&
         36.0 * static_cast<double>(tiles4) <=
             tuning::kWinogradF4MaxMultiplies * 16.0 * static_cast<double>(tiles2);
}

template <class T>
bool conv2d_forward_winograd4(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                              bool relu) {
  const ConvKernels<T> kernels = conv_kernels<T>();
  return winograd_impl::forward(g, 4, x, w, b, y, relu, &transform_weights_f4<T>,
                                kernels.winograd4_input, kernels.winograd4_output);
}
template bool conv2d_forward_winograd4<float>(const Geometry2d&, const float*, const float*,
                                              const float*, float*, bool);
template bool conv2d_forward_winograd4<double>(const Geometry2d&, const double*, const double*,
                                               const double*, double*, bool);

}  // namespace fastcnn
