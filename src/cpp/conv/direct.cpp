// The direct convolutions: GEMMs between the weights and the images' im2col matrices, which
// are never materialised: micro-kernels read them in place from zero-padded copies of the
// images. Which of them runs is decided by the algorithm lists (algorithms.cpp), not here.
//
// Each image is padded once into per-thread scratch (C x Hp x Wp), so reads need no bounds
// checks. Row (c, r, s) of the im2col matrix starts at base = c*Hp*Wp + r*Wp + s of the padded
// image, and output pixel (p, q) adds p*sh*Wp + q*sw. The forward has two forms:
//  - "direct_columns" (unit strides): per image, W . im2col over row-padded output columns
//    j = p*Wp + q (q < Wp, garbage for q >= Q), so im2col row kr is the contiguous run at
//    base + j and the indirect-B micro-kernel reads it in place; the garbage columns are
//    dropped when the result is copied into y with the bias;
//  - "direct_pixels" (any strides): per group of images, im2col^T . W^T with output pixels as
//    rows, read by the indirect-A micro-kernel at pixel offset + base; the result is
//    transposed into y.
// Backward-data "col2im_gemm" computes W^T . dy per image and scatter-adds it into dx; the
// weight gradient "direct_pixels" reads x in place too (see backward_weights_chunk). Threads
// split the batch; weight gradients are summed over fixed chunks of images, then over chunks
// in order.
#include "conv/direct.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/memory.h"
#include "common/parallel.h"
#include "common/tuning.h"
#include "conv/conv_internal.h"
#include "conv/conv_kernels.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack.h"

namespace fastcnn {

namespace {

struct PaddedGeometry {
  int64_t hp, wp, plane;       // padded height, width, and plane size
  int64_t crs, rs;             // im2col rows, and rows per channel
  std::vector<int64_t> bases;  // offset of im2col row kr = (c, r, s) in the padded image
  explicit PaddedGeometry(const Geometry2d& g)
      : hp(g.h + 2 * g.ph),
        wp(g.w + 2 * g.pw),
        plane((g.h + 2 * g.ph) * (g.w + 2 * g.pw)),
        crs(g.c * g.r * g.s),
        rs(g.r * g.s),
        bases(static_cast<std::size_t>(crs)) {
    for (int64_t kr = 0; kr < crs; ++kr) {
      const int64_t c = kr / rs, t = kr % rs;
      bases[kr] = c * plane + (t / g.s) * wp + t % g.s;
    }
  }
};

// Elements past a padded image that forward_columns' edge tiles may read (at most NR - 1).
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

// Pads images [n0, n0 + count) of x one after another into xpad (each C*Hp*Wp).
template <class T>
void pad_images(const Geometry2d& g, const PaddedGeometry& pg, const T* x, int64_t n0,
                int64_t count, T* xpad) {
  for (int64_t i = 0; i < count; ++i)
    pad_image(g, pg, x + (n0 + i) * g.c * g.h * g.w, xpad + i * g.c * pg.plane);
}

// Columns of the row-padded forward product (column j = p*Wp + q, for unit strides).
inline int64_t row_padded_count(const Geometry2d& g, const PaddedGeometry& pg) {
  return (g.p - 1) * pg.wp + g.q;
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
  const int64_t count = row_padded_count(g, pg);
  const PrepackedPanels<T> wpack = prepack_a(cfg, StridedMatrix<T>{w, pg.crs, 1}, g.k, pg.crs);
  const int64_t pq = g.p * g.q;
  parallel_run(threads_for(g.n, conv_work<T>(g)), [&](int part, int parts) {
    int64_t n0, n1;
    partition(g.n, part, parts, n0, n1);
    if (n0 >= n1) return;
    AlignedBuffer<T> xpad = padded_image_buffer<T>(g, pg), prod(g.k * count);
    for (int64_t n = n0; n < n1; ++n) {
      pad_image(g, pg, x + n * g.c * g.h * g.w, xpad.data());
      for_each_k_block(pg.crs, cfg.kc, T(0), [&](int64_t pc, int64_t kc, T beta) {
        for_each_tile(g.k, count, cfg.mr, cfg.nr,
                      [&](int64_t i0, int64_t j0, int64_t mr, int64_t nr) {
                        cfg.ukernel_indirect_b(kc, wpack.block(i0, pc, kc), xpad.data() + j0,
                                               pg.bases.data() + pc, prod.data() + i0 * count + j0,
                                               count, beta, mr, nr);
                      });
      });
      T* yn = y + n * g.k * pq;
      for (int64_t k = 0; k < g.k; ++k) {
        const T bias = b != nullptr ? b[k] : T(0);
        for (int64_t p = 0; p < g.p; ++p) {
          const T* src = prod.data() + k * count + p * pg.wp;
          T* dst = yn + k * pq + p * g.q;
          for (int64_t q = 0; q < g.q; ++q) dst[q] = output_value(src[q], bias, relu);
        }
      }
    }
  });
}

// Images per group in the pixel-row products (tuning.h's kPixelGroup*).
template <class T>
int64_t images_per_group(const Geometry2d& g, const PaddedGeometry& pg) {
  const int64_t by_pixels = ceil_div(tuning::kPixelGroupPixels, std::max<int64_t>(g.p * g.q, 1));
  const int64_t by_bytes = tuning::kPixelGroupMaxBytes /
                           std::max<int64_t>(g.c * pg.plane * static_cast<int64_t>(sizeof(T)), 1);
  return std::clamp<int64_t>(std::min(by_pixels, by_bytes), 1, tuning::kPixelGroupMaxImages);
}

// Offsets of the output pixels of `group` padded images stored one after another: pixel
// j = n*PQ + p*Q + q is at n*C*Hp*Wp + p*sh*Wp + q*sw (add base(c, r, s) for its im2col entry).
inline std::vector<int64_t> pixel_offsets(const Geometry2d& g, const PaddedGeometry& pg,
                                          int64_t group) {
  std::vector<int64_t> offset(static_cast<std::size_t>(group * g.p * g.q));
  for (int64_t n = 0; n < group; ++n)
    for (int64_t p = 0; p < g.p; ++p)
      for (int64_t q = 0; q < g.q; ++q)
        offset[(n * g.p + p) * g.q + q] = n * g.c * pg.plane + p * g.sh * pg.wp + q * g.sw;
  return offset;
}

// Forward with output pixels as the product's rows, for any strides and for images so small
// that row-padded columns would waste much (7 x 7: 2 columns in 9): per group of images,
// prod (pixels x K) = im2col(xpad)^T . W^T. The indirect-A micro-kernel reads pixel i's im2col
// entry kr at xpad[pixel_offset[i] + bases[kr]], so tiles of MR pixels run across rows and
// images with no padding columns; W^T is packed once. The result is transposed into y.
template <class T>
void forward_pixels(const Geometry2d& g, const PaddedGeometry& pg, const GemmConfig<T>& cfg,
                    const T* x, const T* w, const T* b, T* y, bool relu) {
  const int64_t pq = g.p * g.q, image = g.c * pg.plane, group = images_per_group<T>(g, pg);
  const PrepackedPanels<T> wpack = prepack_b(cfg, StridedMatrix<T>{w, 1, pg.crs}, pg.crs, g.k);
  const ConvKernels<T> kernels = conv_kernels<T>();
  const std::vector<int64_t> pixel_offset = pixel_offsets(g, pg, group);
  parallel_run(threads_for(g.n, conv_work<T>(g)), [&](int part, int parts) {
    int64_t n0, n1;
    partition(g.n, part, parts, n0, n1);
    if (n0 >= n1) return;
    AlignedBuffer<T> xpad(group * image), prod(group * pq * g.k);
    for (int64_t ng = n0; ng < n1; ng += group) {
      const int64_t images = std::min(group, n1 - ng), rows = images * pq;
      pad_images(g, pg, x, ng, images, xpad.data());
      for_each_k_block(pg.crs, cfg.kc, T(0), [&](int64_t pc, int64_t kc, T beta) {
        for_each_tile(rows, g.k, cfg.mr, cfg.nr,
                      [&](int64_t i0, int64_t j0, int64_t mr, int64_t nr) {
                        cfg.ukernel_indirect_a(kc, xpad.data(), pixel_offset.data() + i0,
                                               pg.bases.data() + pc, wpack.block(j0, pc, kc),
                                               prod.data() + i0 * g.k + j0, g.k, beta, mr, nr);
                      });
      });
      for (int64_t i = 0; i < images; ++i) {
        kernels.from_pixel_major(prod.data() + i * pq * g.k, pq, g.k, g.k, b, relu,
                                 y + (ng + i) * g.k * pq, pq);
      }
    }
  });
}

// The GEMM tiles of the two forward forms.
template <class T>
GemmConfig<T> columns_config(const Geometry2d& g, const PaddedGeometry& pg) {
  return balanced_kc(gemm_config_for(gemm_config<T>(), g.k, row_padded_count(g, pg)), pg.crs);
}
template <class T>
GemmConfig<T> pixels_config(const Geometry2d& g, const PaddedGeometry& pg) {
  const int64_t group_pixels = images_per_group<T>(g, pg) * g.p * g.q;
  return balanced_kc(gemm_config_for(gemm_config<T>(), group_pixels, g.k, 8), pg.crs);
}

// Fraction of a product's multiply-adds that are useful when `useful` of its rows or columns
// are computed in tiles of `tile`.
inline double tile_fill(int64_t useful, int64_t computed, int64_t tile) {
  return static_cast<double>(useful) / static_cast<double>(round_up(computed, tile));
}

}  // namespace

template <class T>
bool direct_columns_preferred(const Geometry2d& g) {
  if (g.sh != 1 || g.sw != 1) return false;
  const PaddedGeometry pg(g);
  const GemmConfig<T> columns = columns_config<T>(g, pg), pixels = pixels_config<T>(g, pg);
  const int64_t crs = pg.crs, pq = g.p * g.q;
  const int64_t group_pixels = images_per_group<T>(g, pg) * pq;
  // The share of useful multiply-adds in the tiles, times the share of the work that is not
  // the epilogue (tuning.h's kColumnsEpilogueSteps, kPixelsEpilogueSteps).
  const double columns_fill = tile_fill(g.k, g.k, columns.mr) *
                              tile_fill(pq, row_padded_count(g, pg), columns.nr) * crs /
                              (crs + tuning::kColumnsEpilogueSteps);
  const double pixels_fill = tile_fill(g.k, g.k, pixels.nr) *
                             tile_fill(group_pixels, group_pixels, pixels.mr) * crs /
                             (crs + tuning::kPixelsEpilogueSteps);
  return columns_fill >= pixels_fill;
}

template <class T>
void conv2d_forward_columns(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                            bool relu) {
  const PaddedGeometry pg(g);
  forward_columns(g, pg, columns_config<T>(g, pg), x, w, b, y, relu);
}

template <class T>
void conv2d_forward_pixels(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                           bool relu) {
  const PaddedGeometry pg(g);
  forward_pixels(g, pg, pixels_config<T>(g, pg), x, w, b, y, relu);
}

template <class T>
void conv2d_backward_data_col2im(const Geometry2d& g, const T* dy, const T* w, T* dx) {
  const GemmConfig<T>& cfg = gemm_config<T>();
  const PaddedGeometry pg(g);
  const int64_t pq = g.p * g.q;
  // W^T, packed once.
  const PrepackedPanels<T> wpack = prepack_a(cfg, StridedMatrix<T>{w, 1, pg.crs}, pg.crs, g.k);
  parallel_run(threads_for(g.n, conv_work<T>(g)), [&](int part, int parts) {
    int64_t n0, n1;
    partition(g.n, part, parts, n0, n1);
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
          std::memcpy(dxn + (c * g.h + i) * g.w,
                      dxpad.data() + c * pg.plane + (i + g.ph) * pg.wp + g.pw, sizeof(T) * g.w);
    }
  });
}

namespace {

// B = dy^T for pixels [pc, pc + kc) of a group of images (pixel j = n*PQ + p is pixel p of
// image n; dyg is the group's first image), packed into NR-column panels of its K columns:
// each panel is a pixel-major copy of up to NR rows (channels) of dy, zero past K.
template <class T>
void pack_dy_transposed(const ConvKernels<T>& kernels, const Geometry2d& g, const T* dyg, int nr,
                        int64_t pc, int64_t kc, T* dst) {
  const int64_t pq = g.p * g.q;
  for (int64_t j0 = 0; j0 < g.k; j0 += nr, dst += kc * nr) {
    const int64_t valid = std::min<int64_t>(nr, g.k - j0);
    // One image's run of pixels at a time.
    for (int64_t j = pc; j < pc + kc;) {
      const int64_t n = j / pq, p = j % pq, len = std::min(pq - p, pc + kc - j);
      T* out = dst + (j - pc) * nr;
      kernels.to_pixel_major(dyg + (n * g.k + j0) * pq + p, valid, len, pq, out, nr, len, 0);
      if (valid < nr)
        for (int64_t i = 0; i < len; ++i) std::fill(out + i * nr + valid, out + (i + 1) * nr, T(0));
      j += len;
    }
  }
}

// What every chunk of a weight gradient shares: the tile, the group size and the pixel
// offsets of a group (all from the geometry alone, so the sums do not depend on threads).
template <class T>
struct WeightGradientPlan {
  const Geometry2d& g;
  const PaddedGeometry& pg;
  int64_t group;
  GemmConfig<T> cfg;
  std::vector<int64_t> offset;
  ConvKernels<T> kernels;
  WeightGradientPlan(const Geometry2d& g_, const PaddedGeometry& pg_)
      : g(g_),
        pg(pg_),
        group(images_per_group<T>(g_, pg_)),
        cfg(balanced_kc(gemm_config_for(gemm_config<T>(), pg_.crs, g_.k, 8), group * g_.p * g_.q)),
        offset(pixel_offsets(g_, pg_, group)),
        kernels(conv_kernels<T>()) {}
};

// One chunk of images' dW, as dW^T: part[kr*K + k] for im2col row kr = (c, r, s) accumulates
// im2col(x) . dy^T over the exact output pixels of the chunk's images, a group of images at a
// time. Entry kr of pixel j's im2col column is
// xpad[base(kr) + offset(j)], so the indirect-A micro-kernel reads im2col in place, MR rows kr
// at a time; only dy^T is packed.
template <class T>
void backward_weights_chunk(const WeightGradientPlan<T>& plan, const T* dy, const T* x, int64_t i0,
                            int64_t i1, T* part) {
  const Geometry2d& g = plan.g;
  const PaddedGeometry& pg = plan.pg;
  const GemmConfig<T>& cfg = plan.cfg;
  const int64_t pq = g.p * g.q;
  AlignedBuffer<T> xpad(plan.group * g.c * pg.plane), bpack(round_up(g.k, cfg.nr) * cfg.kc);
  for (int64_t ng = i0; ng < i1; ng += plan.group) {
    const int64_t images = std::min(plan.group, i1 - ng), pixels = images * pq;
    const T* dyg = dy + ng * g.k * pq;
    pad_images(g, pg, x, ng, images, xpad.data());
    // The chunk's first group writes part; later groups accumulate.
    for_each_k_block(pixels, cfg.kc, ng == i0 ? T(0) : T(1), [&](int64_t pc, int64_t kc, T beta) {
      pack_dy_transposed(plan.kernels, g, dyg, cfg.nr, pc, kc, bpack.data());
      // Rows outer: each MR-row tile of im2col, gathered through offsets, meets the (few)
      // column tiles of dy^T while it is in L1.
      for_each_tile<TileOrder::rows_outer>(
          pg.crs, g.k, cfg.mr, cfg.nr, [&](int64_t r0, int64_t j0, int64_t mr, int64_t nr) {
            cfg.ukernel_indirect_a(kc, xpad.data(), pg.bases.data() + r0, plan.offset.data() + pc,
                                   bpack.data() + j0 * kc, part + r0 * g.k + j0, g.k, beta, mr, nr);
          });
    });
  }
}

}  // namespace

template <class T>
void conv2d_backward_weights_direct(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db) {
  const PaddedGeometry pg(g);
  const WeightGradientPlan<T> plan(g, pg);
  // A chunk's partial sums are (CRS + 1) rows of K: dW^T, then db.
  AlignedBuffer<T> sum(checked_mul(pg.crs + 1, g.k, "conv2d dW"));
  sum_over_image_chunks<T>(g.n, (pg.crs + 1) * g.k, sum.data(), conv_work<T>(g),
                           [&](int64_t i0, int64_t i1, T* part) {
                             bias_gradient(g, dy, i0, i1, part + pg.crs * g.k);
                             backward_weights_chunk(plan, dy, x, i0, i1, part);
                             return true;
                           });
  parallel_for(g.k, Work{0, 2.0 * sizeof(T) * g.k * pg.crs}, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t r = 0; r < pg.crs; ++r) dw[k * pg.crs + r] = sum.data()[r * g.k + k];
  });
  if (db != nullptr) std::copy(sum.data() + pg.crs * g.k, sum.data() + (pg.crs + 1) * g.k, db);
}

#define FASTCNN_INSTANTIATE_DIRECT(T)                                                          \
  template bool direct_columns_preferred<T>(const Geometry2d&);                                \
  template void conv2d_forward_columns<T>(const Geometry2d&, const T*, const T*, const T*, T*, \
                                          bool);                                               \
  template void conv2d_forward_pixels<T>(const Geometry2d&, const T*, const T*, const T*, T*,  \
                                         bool);                                                \
  template void conv2d_backward_data_col2im<T>(const Geometry2d&, const T*, const T*, T*);     \
  template void conv2d_backward_weights_direct<T>(const Geometry2d&, const T*, const T*, T*, T*);
FASTCNN_INSTANTIATE_DIRECT(float)
FASTCNN_INSTANTIATE_DIRECT(double)

}  // namespace fastcnn
