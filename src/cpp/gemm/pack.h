// Packing of GEMM operands into the micro-panel layout the micro-kernels read.
// A packed A block is ceil(mc/MR) micro-panels of kc x MR (element (i,k) at k*MR + i); a packed
// B panel is ceil(nc/NR) micro-panels of kc x NR (element (k,j) at k*NR + j). Rows/columns past
// the matrix edge are zero, so micro-kernels always run full tiles and never read out of bounds.
// Operands are strided views (element (i,k) at p[i*rs + k*cs]), so transposes and sub-matrices
// pack without a copy; the convolution kernels supply their own packers with the same layout.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace fastcnn {

template <class T>
struct StridedMatrix {
  const T* p;
  int64_t rs;  // elements between consecutive rows
  int64_t cs;  // elements between consecutive columns
};

namespace detail {

// One micro-panel of `width` (= MR for A, NR for B) lanes: lane l, step k comes from
// src[l*lane_stride + k*step_stride]; lanes >= valid are zero.
template <class T, int W>
inline void pack_panel(const T* src, int64_t lane_stride, int64_t step_stride, int64_t valid,
                       int64_t steps, T* dst) {
  if (valid == W && lane_stride == 1) {
    // Lanes contiguous in memory: each step is one W-element copy.
    for (int64_t k = 0; k < steps; ++k)
      std::memcpy(dst + k * W, src + k * step_stride, W * sizeof(T));
    return;
  }
  if (valid == W && step_stride == 1) {
    // Steps contiguous: read W streams, write W-wide rows (a transpose of a W x steps block).
    for (int64_t k = 0; k < steps; ++k) {
#pragma GCC unroll 32
      for (int l = 0; l < W; ++l) dst[k * W + l] = src[l * lane_stride + k];
    }
    return;
  }
  for (int64_t k = 0; k < steps; ++k) {
    for (int64_t l = 0; l < valid; ++l) dst[k * W + l] = src[l * lane_stride + k * step_stride];
    for (int64_t l = valid; l < W; ++l) dst[k * W + l] = T(0);
  }
}

template <class T, int W>
void pack_panels(const T* src, int64_t lane_stride, int64_t step_stride, int64_t lanes,
                 int64_t steps, T* dst) {
  for (int64_t l0 = 0; l0 < lanes; l0 += W) {
    const int64_t valid = lanes - l0 < W ? lanes - l0 : W;
    pack_panel<T, W>(src + l0 * lane_stride, lane_stride, step_stride, valid, steps, dst);
    dst += steps * W;
  }
}

// Runtime panel width -> the compiled instance for it.
template <class T>
void pack_panels_dispatch(int width, const T* src, int64_t lane_stride, int64_t step_stride,
                          int64_t lanes, int64_t steps, T* dst) {
  switch (width) {
    case 4:
      return pack_panels<T, 4>(src, lane_stride, step_stride, lanes, steps, dst);
    case 6:
      return pack_panels<T, 6>(src, lane_stride, step_stride, lanes, steps, dst);
    case 8:
      return pack_panels<T, 8>(src, lane_stride, step_stride, lanes, steps, dst);
    case 12:
      return pack_panels<T, 12>(src, lane_stride, step_stride, lanes, steps, dst);
    case 16:
      return pack_panels<T, 16>(src, lane_stride, step_stride, lanes, steps, dst);
    case 32:
      return pack_panels<T, 32>(src, lane_stride, step_stride, lanes, steps, dst);
    default:
      throw std::logic_error("pack_panels: unsupported micro-panel width");
  }
}

}  // namespace detail

// Rows [i0, i0+mc) x columns [k0, k0+kc) of A into MR-row micro-panels.
template <class T>
void pack_a(const StridedMatrix<T>& a, int mr, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            T* dst) {
  detail::pack_panels_dispatch<T>(mr, a.p + i0 * a.rs + k0 * a.cs, a.rs, a.cs, mc, kc, dst);
}

// Rows [k0, k0+kc) x columns [j0, j0+nc) of B into NR-column micro-panels.
template <class T>
void pack_b(const StridedMatrix<T>& b, int nr, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            T* dst) {
  detail::pack_panels_dispatch<T>(nr, b.p + k0 * b.rs + j0 * b.cs, b.cs, b.rs, nc, kc, dst);
}

}  // namespace fastcnn
