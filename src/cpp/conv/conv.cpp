// Convolution drivers: GEMMs between the weights and the images' im2col matrices, which are
// never materialised: micro-kernels read them in place from zero-padded copies of the images.
//
// Each image is padded once into per-thread scratch (C x Hp x Wp), so reads need no bounds
// checks. Row (c, r, s) of the im2col matrix starts at base = c*Hp*Wp + r*Wp + s of the padded
// image, and output pixel (p, q) adds p*sh*Wp + q*sw. The forward pass has two forms:
//  - "columns" (unit strides): per image, W . im2col over row-padded output columns
//    j = p*Wp + q (q < Wp, garbage for q >= Q), so im2col row kr is the contiguous run at
//    base + j and the indirect-B micro-kernel reads it in place; the garbage columns are
//    dropped when the result is copied into y with the bias;
//  - "pixels" (any strides, and small images whose padding columns would waste much): per
//    group of images, im2col^T . W^T with output pixels as rows, read by the indirect-A
//    micro-kernel at pixel offset + base; the result is transposed into y.
// Backward-data runs as a forward convolution where it can; the weight gradient reads x in
// place too (see backward_weights_unit_stride). Threads split the batch; weight gradients are
// summed over fixed chunks of images, then over chunks in order.
#include "conv/conv.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/memory.h"
#include "common/parallel.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack.h"

namespace fastcnn {

namespace {

struct PaddedGeometry {
  int64_t hp, wp, plane;  // padded height, width, and plane size
  int64_t crs, rs;        // im2col rows, and rows per channel
  std::vector<int64_t> bases;  // offset of im2col row kr = (c, r, s) in the padded image
  explicit PaddedGeometry(const Geometry2d& g)
      : hp(g.h + 2 * g.ph), wp(g.w + 2 * g.pw), plane((g.h + 2 * g.ph) * (g.w + 2 * g.pw)),
        crs(g.c * g.r * g.s), rs(g.r * g.s), bases(static_cast<std::size_t>(crs)) {
    for (int64_t kr = 0; kr < crs; ++kr) {
      const int64_t c = kr / rs, t = kr % rs;
      bases[kr] = c * plane + (t / g.s) * wp + t % g.s;
    }
  }
};

// cfg with its KC block shrunk so that K splits into equal blocks (K = 288 with KC = 256 would
// otherwise leave a 32-deep block that costs a whole extra pass over the C tiles).
template <class T>
GemmConfig<T> balanced_kc(const GemmConfig<T>& cfg, int64_t K) {
  GemmConfig<T> out = cfg;
  const int64_t blocks = std::max<int64_t>(1, ceil_div(K, cfg.kc));
  out.kc = std::min(cfg.kc, round_up(ceil_div(K, blocks), 8));
  return out;
}

// Elements past a padded image that forward_in_place's edge tiles may read (at most NR - 1).
constexpr int64_t kPanelSlack = 32;

// A padded image's buffer: C*Hp*Wp elements and kPanelSlack zeros after them.
template <class T>
AlignedBuffer<T> padded_image_buffer(const Geometry2d& g, const PaddedGeometry& pg) {
  AlignedBuffer<T> buf(g.c * pg.plane + kPanelSlack);
  std::fill(buf.data() + g.c * pg.plane, buf.data() + buf.size(), T(0));
  return buf;
}

// Copies image x_n (C,H,W) into xpad (C,Hp,Wp) with zero borders.
template <class T>
void pad_image(const Geometry2d& g, const PaddedGeometry& pg, const T* xn, T* xpad) {
  if (g.ph == 0 && g.pw == 0) {
    std::memcpy(xpad, xn, sizeof(T) * g.c * g.h * g.w);
    return;
  }
  std::fill(xpad, xpad + g.c * pg.plane, T(0));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.h; ++i)
      std::memcpy(xpad + c * pg.plane + (i + g.ph) * pg.wp + g.pw, xn + (c * g.h + i) * g.w,
                  sizeof(T) * g.w);
}

// Output-column layout of the forward product: row-padded (width Wp) for unit strides unless
// the caller asks for exact columns (width Q).
struct Columns {
  bool contiguous;  // row-padded: column j is pixel offset j of the padded image
  int64_t width;    // columns per output row in the product (Wp or Q)
  int64_t count;    // columns of the product
  Columns(const Geometry2d& g, const PaddedGeometry& pg, bool row_padded = true)
      : contiguous(row_padded && g.sh == 1 && g.sw == 1),
        width(contiguous ? pg.wp : g.q),
        count((g.p - 1) * width + g.q) {}
  int64_t offset(const Geometry2d& g, const PaddedGeometry& pg, int64_t j) const {
    return contiguous ? j : (j / width) * g.sh * pg.wp + (j % width) * g.sw;
  }
};

// y = v + bias, or relu(v + bias): the forward epilogue. NaN propagates, as in relu_forward.
template <class T>
inline T output_value(T v, T bias, bool relu) {
  const T out = v + bias;
  return relu && out <= T(0) ? T(0) : out;
}

// Forward for unit strides over row-padded columns (column j = p*Wp + q): per image,
// prod (K x count) = W . im2col(xpad), with no packing of the image: the indirect-B
// micro-kernel reads im2col row kr at xpad + bases[kr] + j. The loop order is the GEMM
// driver's: KC blocks, then NR-column tiles (whose im2col rows stay in L1), then the weights'
// MR-row tiles. Edge tiles read up to NR - 1 columns past count (xpad's slack).
template <class T>
void forward_columns(const Geometry2d& g, const PaddedGeometry& pg, const GemmConfig<T>& cfg,
                     const T* x, const T* w, const T* b, T* y, bool relu) {
  static_assert(kPanelSlack >= kMaxNr - 1, "edge tiles read past the image");
  const Columns cols(g, pg);
  const PrepackedA<T> wpack = prepack_a(cfg, StridedMatrix<T>{w, pg.crs, 1}, g.k, pg.crs);
  const int64_t pq = g.p * g.q;
  parallel_run(threads_for(g.n), [&](int tid, int nt) {
    int64_t n0, n1;
    partition(g.n, tid, nt, n0, n1);
    if (n0 >= n1) return;
    AlignedBuffer<T> xpad = padded_image_buffer<T>(g, pg), prod(g.k * cols.count);
    for (int64_t n = n0; n < n1; ++n) {
      pad_image(g, pg, x + n * g.c * g.h * g.w, xpad.data());
      for (int64_t pc = 0; pc < pg.crs; pc += cfg.kc) {
        const int64_t kc = std::min(cfg.kc, pg.crs - pc);
        const T beta = pc == 0 ? T(0) : T(1);
        for (int64_t j0 = 0; j0 < cols.count; j0 += cfg.nr) {
          const int64_t nr = std::min<int64_t>(cfg.nr, cols.count - j0);
          for (int64_t i0 = 0; i0 < g.k; i0 += cfg.mr) {
            cfg.ukernel_indirect_b(kc, wpack.block(i0, pc, kc), xpad.data() + j0,
                                   pg.bases.data() + pc, prod.data() + i0 * cols.count + j0,
                                   cols.count, beta, std::min<int64_t>(cfg.mr, g.k - i0), nr);
          }
        }
      }
      T* yn = y + n * g.k * pq;
      for (int64_t k = 0; k < g.k; ++k) {
        const T bias = b != nullptr ? b[k] : T(0);
        for (int64_t p = 0; p < g.p; ++p) {
          const T* src = prod.data() + k * cols.count + p * cols.width;
          T* dst = yn + k * pq + p * g.q;
          for (int64_t q = 0; q < g.q; ++q) dst[q] = output_value(src[q], bias, relu);
        }
      }
    }
  });
}

// Forward with output pixels as the product's rows, for any strides and for images so small
// that row-padded columns would waste much (7 x 7: 2 columns in 9): per group of images,
// prod (pixels x K) = im2col(xpad)^T . W^T. The indirect-A micro-kernel reads pixel i's im2col
// entry kr at xpad[pixel_offset[i] + bases[kr]], so tiles of MR pixels run across rows and
// images with no padding columns; W^T is packed once. The result is transposed into y.
template <class T>
void forward_pixels(const Geometry2d& g, const PaddedGeometry& pg, const GemmConfig<T>& cfg,
                    const T* x, const T* w, const T* b, T* y, bool relu) {
  const int64_t pq = g.p * g.q, image = g.c * pg.plane;
  // Images per group: enough pixels for long runs of full tiles, a few hundred KiB of scratch.
  const int64_t group = std::clamp<int64_t>(ceil_div(256, pq), 1, 16);
  const PrepackedA<T> wpack = prepack_b(cfg, StridedMatrix<T>{w, 1, pg.crs}, pg.crs, g.k);
  std::vector<int64_t> pixel_offset(static_cast<std::size_t>(group * pq));
  for (int64_t i = 0; i < group; ++i)
    for (int64_t p = 0; p < g.p; ++p)
      for (int64_t q = 0; q < g.q; ++q)
        pixel_offset[(i * g.p + p) * g.q + q] = i * image + p * g.sh * pg.wp + q * g.sw;
  parallel_run(threads_for(g.n), [&](int tid, int nt) {
    int64_t n0, n1;
    partition(g.n, tid, nt, n0, n1);
    if (n0 >= n1) return;
    AlignedBuffer<T> xpad(group * image), prod(group * pq * g.k);
    for (int64_t ng = n0; ng < n1; ng += group) {
      const int64_t images = std::min(group, n1 - ng), rows = images * pq;
      for (int64_t i = 0; i < images; ++i)
        pad_image(g, pg, x + (ng + i) * g.c * g.h * g.w, xpad.data() + i * image);
      for (int64_t pc = 0; pc < pg.crs; pc += cfg.kc) {
        const int64_t kc = std::min(cfg.kc, pg.crs - pc);
        const T beta = pc == 0 ? T(0) : T(1);
        for (int64_t j0 = 0; j0 < g.k; j0 += cfg.nr) {
          const int64_t nr = std::min<int64_t>(cfg.nr, g.k - j0);
          for (int64_t i0 = 0; i0 < rows; i0 += cfg.mr) {
            cfg.ukernel_indirect_a(kc, xpad.data(), pixel_offset.data() + i0,
                                   pg.bases.data() + pc, wpack.block(j0, pc, kc),
                                   prod.data() + i0 * g.k + j0, g.k, beta,
                                   std::min<int64_t>(cfg.mr, rows - i0), nr);
          }
        }
      }
      for (int64_t i = 0; i < images; ++i) {
        T* yn = y + (ng + i) * g.k * pq;
        const T* src = prod.data() + i * pq * g.k;
        for (int64_t k = 0; k < g.k; ++k) {
          const T bias = b != nullptr ? b[k] : T(0);
          for (int64_t j = 0; j < pq; ++j) yn[k * pq + j] = output_value(src[j * g.k + k], bias, relu);
        }
      }
    }
  });
}

}  // namespace

// Fraction of a product's multiply-adds that are useful when `useful` of its rows or columns
// are computed in tiles of `tile`.
inline double tile_fill(int64_t useful, int64_t computed, int64_t tile) {
  return static_cast<double>(useful) / static_cast<double>(round_up(computed, tile));
}

template <class T>
void conv2d_forward(const Geometry2d& g, const T* x, const T* w, const T* b, T* y, bool relu) {
  g.validate("conv2d_forward");
  const PaddedGeometry pg(g);
  const int64_t crs = pg.crs, pq = g.p * g.q;
  const GemmConfig<T> columns_cfg = balanced_kc(gemm_config_for(gemm_config<T>(), g.k, pq), crs);
  const GemmConfig<T> pixels_cfg =
      balanced_kc(gemm_config_for(gemm_config<T>(), g.n * pq, g.k, 8), crs);
  const Columns cols(g, pg);
  // Unit strides choose by a cost model: the share of useful multiply-adds in the tiles, times
  // the share of the work that is not the epilogue (per tile, about 8 steps of the K loop to
  // copy out row-padded columns, 24 to transpose pixel rows).
  const double columns_fill = tile_fill(g.k, g.k, columns_cfg.mr) *
                              tile_fill(pq, cols.count, columns_cfg.nr) * crs / (crs + 8.0);
  const double pixels_fill = tile_fill(g.k, g.k, pixels_cfg.nr) * crs / (crs + 24.0);
  if (cols.contiguous && columns_fill >= pixels_fill) {
    forward_columns(g, pg, columns_cfg, x, w, b, y, relu);
  } else {
    forward_pixels(g, pg, pixels_cfg, x, w, b, y, relu);
  }
}

template <class T>
void conv2d_backward_data(const Geometry2d& g, const T* dy, const T* w, T* dx) {
  g.validate("conv2d_backward_data");
  // (Finite weights only: the forward form multiplies dy's zero padding by every weight, and
  // 0 * inf would put NaN where the scatter form has none.)
  if (g.sh == 1 && g.sw == 1 && g.ph < g.r && g.pw < g.s && g.c >= 8 &&
      all_finite(w, g.k * g.c * g.r * g.s)) {
    // Unit stride: dx is the forward convolution of dy, zero-padded by (R-1-ph, S-1-pw), with
    // the kernel flipped in space and its in/out channels swapped (w'[c,k,r,s] =
    // w[k,c,R-1-r,S-1-s]); it then runs on the faster forward path with no col2im scatter.
    // Not for a few input channels: they become the GEMM's rows, too few to fill a micro-tile.
    const Geometry2d gt{g.n, g.k, g.p, g.q, g.c, g.r, g.s, 1, 1, g.r - 1 - g.ph, g.s - 1 - g.pw,
                        g.h, g.w};
    const int64_t rs = g.r * g.s;
    AlignedBuffer<T> wt(checked_mul(g.k * g.c, rs, "conv2d_backward_data weights"));
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t k = 0; k < g.k; ++k)
        for (int64_t t = 0; t < rs; ++t) wt.data()[(c * g.k + k) * rs + t] = w[(k * g.c + c) * rs + rs - 1 - t];
    conv2d_forward<T>(gt, dy, wt.data(), nullptr, dx, false);
    return;
  }
  const GemmConfig<T>& cfg = gemm_config<T>();
  const PaddedGeometry pg(g);
  const int64_t pq = g.p * g.q;
  const PrepackedA<T> wpack = prepack_a(cfg, StridedMatrix<T>{w, 1, pg.crs}, pg.crs, g.k);  // W^T
  parallel_run(threads_for(g.n), [&](int tid, int nt) {
    int64_t n0, n1;
    partition(g.n, tid, nt, n0, n1);
    if (n0 >= n1) return;
    AlignedBuffer<T> dxpad(g.c * pg.plane), dcol(pg.crs * pq);
    GemmScratch<T> scratch(cfg, pg.crs, pq, g.k);
    for (int64_t n = n0; n < n1; ++n) {
      // dcol = W^T . dy_n (CRS x PQ), then scatter-add it into the padded image (col2im).
      const StridedMatrix<T> dyn{dy + n * g.k * pq, pq, 1};
      auto pb = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
        pack_b(dyn, cfg.nr, k0, kc, j0, nc, dst);
      };
      gemm_block_range<T>(cfg, 0, pg.crs, 0, pq, g.k, T(1), wpack, pb, T(0), dcol.data(), pq,
                          scratch);
      std::fill(dxpad.data(), dxpad.data() + g.c * pg.plane, T(0));
      for (int64_t kr = 0; kr < pg.crs; ++kr) {
        T* base = dxpad.data() + pg.bases[kr];
        const T* src = dcol.data() + kr * pq;
        for (int64_t p = 0; p < g.p; ++p) {
          T* row = base + p * g.sh * pg.wp;
          for (int64_t q = 0; q < g.q; ++q) row[q * g.sw] += src[p * g.q + q];
        }
      }
      T* dxn = dx + n * g.c * g.h * g.w;
      for (int64_t c = 0; c < g.c; ++c)
        for (int64_t i = 0; i < g.h; ++i)
          std::memcpy(dxn + (c * g.h + i) * g.w, dxpad.data() + c * pg.plane + (i + g.ph) * pg.wp + g.pw,
                      sizeof(T) * g.w);
    }
  });
}

namespace {

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

// dy_n (K, P, Q) into row-padded columns: dyrp[k*count + p*Wp + q], zero for q >= Q; and
// dbp[k] += sum of dy_n[k] (summed in pixel order).
template <class T>
void row_pad_dy(const Geometry2d& g, const PaddedGeometry& pg, int64_t count, const T* dyn,
                T* dyrp, T* dbp) {
  const int64_t pq = g.p * g.q;
  for (int64_t k = 0; k < g.k; ++k) {
    T* dst = dyrp + k * count;
    dbp[k] += lane_sum(dyn + k * pq, pq);
    for (int64_t p = 0; p < g.p; ++p) {
      std::memcpy(dst + p * pg.wp, dyn + k * pq + p * g.q, sizeof(T) * g.q);
      if (p + 1 < g.p) std::fill(dst + p * pg.wp + g.q, dst + (p + 1) * pg.wp, T(0));
    }
  }
}

// One chunk of images' dW for unit strides, as dW^T: part[(t*C + c)*K + k] for t = r*S + s,
// accumulates im2col(x_n) . dy_n^T over row-padded pixel columns j = p*Wp + q. Row (c, r, s)
// of im2col(x_n) is then xpad + c*plane + r*Wp + s + j, so for a fixed (r, s) the rows of
// successive channels are `plane` apart, and for a fixed (c, r) the rows of successive s are 1
// apart: the micro-kernel reads them in place (no packing of the big operand), and only dy_n^T
// (K columns; zero in the padding columns) is packed.
template <class T>
void backward_weights_unit_stride(const Geometry2d& g, const PaddedGeometry& pg, const T* dy,
                                  const T* x, int64_t i0, int64_t i1, T* part, T* dbp) {
  // The tiles' rows: input channels (for each kernel position t, rows c are `plane` apart), or,
  // with fewer channels than kernel columns (a first layer), the kernel columns s (for each
  // channel and kernel row, rows s are 1 apart). Either way part row (t*C + c) gets the sum.
  const bool rows_are_channels = g.c >= g.s;
  const GemmConfig<T>& cfg =
      gemm_config_for(gemm_config<T>(), rows_are_channels ? g.c : g.s, g.k);
  const Columns cols(g, pg);
  const int64_t pq = g.p * g.q, count = cols.count;
  AlignedBuffer<T> xpad(g.c * pg.plane), dyrp(g.k * count);
  AlignedBuffer<T> bpack(round_up(g.k, cfg.nr) * std::min(cfg.kc, count));
  const StridedMatrix<T> dyt{dyrp.data(), 1, count};  // dy_n^T: (count x K)
  for (int64_t n = i0; n < i1; ++n) {
    pad_image(g, pg, x + n * g.c * g.h * g.w, xpad.data());
    row_pad_dy(g, pg, count, dy + n * g.k * pq, dyrp.data(), dbp);
    for (int64_t pc = 0; pc < count; pc += cfg.kc) {
      const int64_t kc = std::min(cfg.kc, count - pc);
      pack_b(dyt, cfg.nr, pc, kc, 0, g.k, bpack.data());
      const T beta = n == i0 && pc == 0 ? T(0) : T(1);
      // Rows [a + i*rsa] for i < m, summed into part rows [c + i*ldc].
      auto tile_rows = [&](const T* a, int64_t rsa, int64_t m, T* c, int64_t ldc) {
        for (int64_t j0 = 0; j0 < g.k; j0 += cfg.nr) {
          cfg.ukernel_strided_a(kc, a + pc, rsa, 1, bpack.data() + j0 * kc, c + j0, ldc, T(1),
                                beta, m, std::min<int64_t>(cfg.nr, g.k - j0));
        }
      };
      if (rows_are_channels) {
        for (int64_t t = 0; t < pg.rs; ++t)
          for (int64_t c0 = 0; c0 < g.c; c0 += cfg.mr)
            tile_rows(xpad.data() + pg.bases[t] + c0 * pg.plane, pg.plane,
                      std::min<int64_t>(cfg.mr, g.c - c0), part + (t * g.c + c0) * g.k, g.k);
      } else {
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t r = 0; r < g.r; ++r)
            for (int64_t s0 = 0; s0 < g.s; s0 += cfg.mr)
              tile_rows(xpad.data() + pg.bases[(c * g.r + r) * g.s + s0], 1,
                        std::min<int64_t>(cfg.mr, g.s - s0),
                        part + ((r * g.s + s0) * g.c + c) * g.k, g.c * g.k);
      }
    }
  }
}

// One chunk of images' dW by a packed GEMM, for strided convolutions (and for non-finite x):
// part[k*CRS + kr] accumulates dy_n . im2col(x_n)^T over the exact pixel columns j, with
// B(j, kr) = xpad[base(kr) + offset(j)] gathered from the padded image into packed panels.
template <class T>
void backward_weights_packed(const Geometry2d& g, const PaddedGeometry& pg, const T* dy,
                             const T* x, int64_t i0, int64_t i1, T* part, T* dbp) {
  const GemmConfig<T>& cfg = gemm_config_for(gemm_config<T>(), g.k, pg.crs);
  const Columns cols(g, pg, false);
  const int64_t pq = g.p * g.q;
  AlignedBuffer<T> xpad(g.c * pg.plane);
  GemmScratch<T> scratch(cfg, g.k, pg.crs, pq);
  std::vector<int64_t> offset(static_cast<std::size_t>(pq));
  for (int64_t j = 0; j < pq; ++j) offset[j] = cols.offset(g, pg, j);
  const std::vector<int64_t>& base = pg.bases;
  StridedMatrix<T> dym{nullptr, pq, 1};  // dy_n (K x PQ), set per image
  auto pa = [&](int64_t r0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
    pack_a(dym, cfg.mr, r0, mc, k0, kc, dst);
  };
  auto pb = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
    const int nr = cfg.nr;
    for (int64_t jp = 0; jp < nc; jp += nr, dst += kc * nr) {
      const int64_t valid = std::min<int64_t>(nr, nc - jp);
      for (int64_t kk = 0; kk < kc; ++kk) {
        T* d = dst + kk * nr;
        const T* src = xpad.data() + offset[k0 + kk];
        for (int64_t jj = 0; jj < valid; ++jj) d[jj] = src[base[j0 + jp + jj]];
        for (int64_t jj = valid; jj < nr; ++jj) d[jj] = T(0);
      }
    }
  };
  for (int64_t n = i0; n < i1; ++n) {
    pad_image(g, pg, x + n * g.c * g.h * g.w, xpad.data());
    const T* dyn = dy + n * g.k * pq;
    for (int64_t k = 0; k < g.k; ++k) dbp[k] += lane_sum(dyn + k * pq, pq);
    dym.p = dyn;
    gemm_block_range<T>(cfg, 0, g.k, 0, pg.crs, pq, T(1), pa, pb, n == i0 ? T(0) : T(1), part,
                        pg.crs, scratch);
  }
}

// all_finite over x, split over threads (a boolean AND: the same answer for any split).
template <class T>
bool x_all_finite(const Geometry2d& g, const T* x) {
  const int64_t per_image = g.c * g.h * g.w;
  std::vector<char> ok(static_cast<std::size_t>(std::max<int64_t>(g.n, 1)), 1);
  parallel_for(g.n, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) ok[n] = all_finite(x + n * per_image, per_image) ? 1 : 0;
  });
  return std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
}

}  // namespace

template <class T>
void conv2d_backward_weights(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db) {
  g.validate("conv2d_backward_weights");
  const PaddedGeometry pg(g);
  const int64_t kcrs = g.k * pg.crs;
  // The unit-stride path sums over row-padded pixel columns, where dy is 0 but x holds real
  // pixels of neighbouring positions: only for finite x (0 * inf would leak NaN into dW).
  const bool in_place = g.sh == 1 && g.sw == 1 && x_all_finite(g, x);
  // Fixed chunks of images, independent of the thread count.
  const int64_t chunks = std::min<int64_t>(g.n, 16);
  AlignedBuffer<T> partial(checked_mul(std::max<int64_t>(chunks, 1), kcrs + g.k, "conv2d dW"));
  parallel_run(threads_for(chunks), [&](int tid, int nt) {
    int64_t c0, c1;
    partition(chunks, tid, nt, c0, c1);
    for (int64_t ch = c0; ch < c1; ++ch) {
      T* part = partial.data() + ch * (kcrs + g.k);
      T* dbp = part + kcrs;
      std::fill(dbp, dbp + g.k, T(0));
      int64_t i0, i1;
      partition(g.n, static_cast<int>(ch), static_cast<int>(chunks), i0, i1);
      if (in_place) {
        backward_weights_unit_stride(g, pg, dy, x, i0, i1, part, dbp);
      } else {
        backward_weights_packed(g, pg, dy, x, i0, i1, part, dbp);
      }
    }
  });
  // Chunks in order, element by element (a vector add of each chunk over a slice of the
  // elements), so any split of the elements gives the same bits.
  const int64_t total_size = kcrs + g.k;
  AlignedBuffer<T> total(total_size);
  parallel_for(total_size, [&](int64_t e0, int64_t e1) {
    T* out = total.data();
    if (chunks == 0) {
      std::fill(out + e0, out + e1, T(0));
      return;
    }
    std::copy(partial.data() + e0, partial.data() + e1, out + e0);
    for (int64_t ch = 1; ch < chunks; ++ch) {
      const T* src = partial.data() + ch * total_size;
      for (int64_t e = e0; e < e1; ++e) out[e] += src[e];
    }
  });
  // The in-place partials hold dW^T in (R, S, C) x K order.
  if (in_place) {
    for (int64_t t = 0; t < pg.rs; ++t)
      for (int64_t c = 0; c < g.c; ++c)
        for (int64_t k = 0; k < g.k; ++k)
          dw[(k * g.c + c) * pg.rs + t] = total.data()[(t * g.c + c) * g.k + k];
  } else {
    std::copy(total.data(), total.data() + kcrs, dw);
  }
  if (db != nullptr) std::copy(total.data() + kcrs, total.data() + total_size, db);
}

#define FASTCNN_INSTANTIATE_CONV(T)                                                        \
  template void conv2d_forward<T>(const Geometry2d&, const T*, const T*, const T*, T*, bool); \
  template void conv2d_backward_data<T>(const Geometry2d&, const T*, const T*, T*);           \
  template void conv2d_backward_weights<T>(const Geometry2d&, const T*, const T*, T*, T*);
FASTCNN_INSTANTIATE_CONV(float)
FASTCNN_INSTANTIATE_CONV(double)

}  // namespace fastcnn
