// GEMM configurations per ISA (micro-kernel + cache blocking) and the strided-matrix entry point.
//
// Blocking (Zen 4 / Skylake-class cores: 32 KiB L1d, 1-2 MiB L2, shared L3):
//  - kc = 256: a kc x NR B micro-panel (16 KiB for float 6x16) plus a kc x MR A micro-panel
//    (6 KiB) fit in L1 together while the micro-kernel streams them;
//  - mc: an mc x kc packed A block is ~1/3-1/2 of L2 so it stays resident across the jr loop;
//  - nc: a kc x nc packed B panel (~4 MiB for float) lives in L3, shared by the cores.
#include "gemm/gemm.h"

#include <type_traits>

#include "common/tuning.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack.h"

namespace fastcnn {

namespace {

// {packed-A, strided-A, indirect-B, indirect-A and strided-AB kernels, MR, NR, MC, KC, NC,
// name} for <dt>_gemm_ukernel_<tile>[_strided_a|_indirect_b|_indirect_a|_strided_ab]__<isa>.
#define FASTCNN_GEMM_CONFIG(dt, tile, isa, mr, nr, mc, kc, nc) \
  {dt##_gemm_ukernel_##tile##__##isa,                          \
   dt##_gemm_ukernel_##tile##_strided_a__##isa,                \
   dt##_gemm_ukernel_##tile##_indirect_b__##isa,               \
   dt##_gemm_ukernel_##tile##_indirect_a__##isa,               \
   dt##_gemm_ukernel_##tile##_strided_ab__##isa,               \
   mr,                                                         \
   nr,                                                         \
   mc,                                                         \
   kc,                                                         \
   nc,                                                         \
   #dt "_gemm_ukernel_" #tile "__" #isa}

// One dtype's configurations; an ISA this build has no kernels for falls back to generic.
template <class T>
struct GemmConfigs {
  GemmConfig<T> generic;
  const GemmConfig<T>* avx2;
  const GemmConfig<T>* avx512;
  constexpr const GemmConfig<T>& operator[](Isa isa) const {
    if (isa == Isa::avx512 && avx512 != nullptr) return *avx512;
    if (isa == Isa::avx2 && avx2 != nullptr) return *avx2;
    return generic;
  }
};

#if defined(FASTCNN_HAVE_AVX2)
constexpr GemmConfig<float> kF32Avx2 = FASTCNN_GEMM_CONFIG(f32, 6x16, avx2, 6, 16, 144, 256, 4080);
constexpr GemmConfig<double> kF64Avx2 = FASTCNN_GEMM_CONFIG(f64, 6x8, avx2, 6, 8, 96, 256, 2040);
#define FASTCNN_AVX2_CONFIG(cfg) &(cfg)
#else
#define FASTCNN_AVX2_CONFIG(cfg) nullptr
#endif
#if defined(FASTCNN_HAVE_AVX512)
constexpr GemmConfig<float> kF32Avx512 =
    FASTCNN_GEMM_CONFIG(f32, 12x32, avx512, 12, 32, 144, 256, 4096);
constexpr GemmConfig<double> kF64Avx512 =
    FASTCNN_GEMM_CONFIG(f64, 12x16, avx512, 12, 16, 96, 256, 2048);
constexpr GemmConfig<float> kF32Avx512Short =
    FASTCNN_GEMM_CONFIG(f32, 8x32, avx512, 8, 32, 128, 256, 4096);
constexpr GemmConfig<double> kF64Avx512Short =
    FASTCNN_GEMM_CONFIG(f64, 8x16, avx512, 8, 16, 96, 256, 2048);
constexpr GemmConfig<float> kF32Avx512Narrow =
    FASTCNN_GEMM_CONFIG(f32, 8x16, avx512, 8, 16, 128, 256, 4096);
constexpr GemmConfig<double> kF64Avx512Narrow =
    FASTCNN_GEMM_CONFIG(f64, 8x8, avx512, 8, 8, 96, 256, 2048);
#define FASTCNN_AVX512_CONFIG(cfg) &(cfg)
// The float32 or float64 one of a pair of configurations.
template <class T>
constexpr const GemmConfig<T>& for_dtype(const GemmConfig<float>& f, const GemmConfig<double>& d) {
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    return d;
  }
}
template <class T>
constexpr const GemmConfig<T>& avx512_short_config() {
  return for_dtype<T>(kF32Avx512Short, kF64Avx512Short);
}
template <class T>
constexpr const GemmConfig<T>& avx512_narrow_config() {
  return for_dtype<T>(kF32Avx512Narrow, kF64Avx512Narrow);
}
#else
#define FASTCNN_AVX512_CONFIG(cfg) nullptr
#endif

constexpr GemmConfigs<float> kF32Configs{
    FASTCNN_GEMM_CONFIG(f32, 4x8, generic, 4, 8, 128, 256, 4096), FASTCNN_AVX2_CONFIG(kF32Avx2),
    FASTCNN_AVX512_CONFIG(kF32Avx512)};
constexpr GemmConfigs<double> kF64Configs{
    FASTCNN_GEMM_CONFIG(f64, 4x4, generic, 4, 4, 96, 256, 4096), FASTCNN_AVX2_CONFIG(kF64Avx2),
    FASTCNN_AVX512_CONFIG(kF64Avx512)};

constexpr bool nr_fits(const GemmConfig<float>& f, const GemmConfig<double>& d) {
  return f.nr <= kMaxNr && d.nr <= kMaxNr;
}
static_assert(nr_fits(kF32Configs.generic, kF64Configs.generic), "kMaxNr");
#if defined(FASTCNN_HAVE_AVX2)
static_assert(nr_fits(kF32Avx2, kF64Avx2), "kMaxNr");
#endif
#if defined(FASTCNN_HAVE_AVX512)
static_assert(nr_fits(kF32Avx512, kF64Avx512) && nr_fits(kF32Avx512Short, kF64Avx512Short) &&
                  nr_fits(kF32Avx512Narrow, kF64Avx512Narrow),
              "kMaxNr");
#endif

}  // namespace

template <>
const GemmConfig<float>& gemm_config<float>(Isa isa) {
  return kF32Configs[isa];
}

template <>
const GemmConfig<double>& gemm_config<double>(Isa isa) {
  return kF64Configs[isa];
}

template <class T>
const GemmConfig<T>& gemm_config() {
  return gemm_config<T>(active_isa());
}
template const GemmConfig<float>& gemm_config<float>();
template const GemmConfig<double>& gemm_config<double>();

// A product only NR/2 columns wide would waste half of each wide (AVX-512) micro-tile: such
// products use the one-vector AVX-512 tile (8 rows; on Zen 4 the AVX2 tile of the same width
// ran a convolution's weight gradient ~1.3x slower). A short product
// (M <= 96 rows) whose rows fill 8-row tiles better than 12-row ones uses the 8-row AVX-512
// tile: same vectors, fewer rows of padding (16 output channels: 16 rows, not 24). So does a
// product whose tiles may have at most max_mr rows.
template <class T>
const GemmConfig<T>& gemm_config_for(const GemmConfig<T>& active, int64_t M, int64_t N,
                                     int max_mr) {
#if defined(FASTCNN_HAVE_AVX512)
  if (&active == &gemm_config<T>(Isa::avx512) && N <= avx512_narrow_config<T>().nr) {
    return avx512_narrow_config<T>();
  }
  if (&active == &gemm_config<T>(Isa::avx512) &&
      ((M <= 96 && round_up(M, 8) - M < round_up(M, active.mr) - M) || active.mr > max_mr)) {
    return avx512_short_config<T>();
  }
#endif
  (void)M;
  (void)N;
  (void)max_mr;
  return active;
}

template const GemmConfig<float>& gemm_config_for<float>(const GemmConfig<float>&, int64_t, int64_t,
                                                         int);
template const GemmConfig<double>& gemm_config_for<double>(const GemmConfig<double>&, int64_t,
                                                           int64_t, int);

template <class T>
std::vector<const GemmConfig<T>*> gemm_configs(Isa isa) {
  std::vector<const GemmConfig<T>*> out{&gemm_config<T>(isa)};
#if defined(FASTCNN_HAVE_AVX512)
  if (&gemm_config<T>(isa) == &gemm_config<T>(Isa::avx512)) {
    out.push_back(&avx512_short_config<T>());
    out.push_back(&avx512_narrow_config<T>());
  }
#endif
  return out;
}
template std::vector<const GemmConfig<float>*> gemm_configs<float>(Isa);
template std::vector<const GemmConfig<double>*> gemm_configs<double>(Isa);

namespace {

// Small products: at most tuning::kSmallGemmMaxRowTiles rows of micro-tiles (a layer's
// forward or backward on a few images), where each element of B meets so few tiles that
// packing it would cost about as much as the product, and the scratch and K blocking of the
// general driver are pure overhead. Both operands are read in place, the K loop runs whole in
// registers, nothing is allocated:
//  - B with contiguous rows (x . W): the strided-AB micro-kernel reads B's rows through their
//    stride, masking the edge columns;
//  - B with contiguous columns (dy . W^T): C^T = B^T . A^T, B^T read in place by the strided-A
//    micro-kernel and A^T (K x M, at most one micro-panel) packed, into an N x M scratch that
//    is then transposed into C.
// Each element of C is computed by one micro-kernel call whatever the thread count (threads
// split the column tiles, or the tiles of C^T), so results do not depend on it. Returns false
// when the product is not small or B's layout fits neither form.
template <class T>
bool gemm_small(const GemmConfig<T>& active, int64_t M, int64_t N, int64_t K, T alpha,
                const StridedMatrix<T>& A, const StridedMatrix<T>& B, T beta, T* c, int64_t ldc) {
  if (M <= 0 || N <= 0 || K <= 0 || alpha == T(0)) return false;  // the driver's degenerate cases
  const Work work = gemm_work<T>(M, N, K);
  if (B.cs == 1 || N == 1) {
    const GemmConfig<T>& cfg = gemm_config_for(active, M, N);
    if (ceil_div(M, cfg.mr) > tuning::kSmallGemmMaxRowTiles) return false;
    parallel_for(ceil_div(N, cfg.nr), work, [&](int64_t t0, int64_t t1) {
      for (int64_t j0 = t0 * cfg.nr; j0 < std::min(N, t1 * cfg.nr); j0 += cfg.nr) {
        for (int64_t i0 = 0; i0 < M; i0 += cfg.mr) {
          cfg.ukernel_strided_ab(
              K, A.p + i0 * A.rs, A.rs, A.cs, B.p + j0 * B.cs, B.rs, c + i0 * ldc + j0, ldc, alpha,
              beta, std::min<int64_t>(cfg.mr, M - i0), std::min<int64_t>(cfg.nr, N - j0));
        }
      }
    });
    return true;
  }
  if (B.rs != 1) return false;
  // C^T (N x M) = B^T (N x K, rows of B^T are B's contiguous columns) . A^T (K x M).
  const GemmConfig<T>& cfg = gemm_config_for(active, N, M);
  if (M > cfg.nr || ceil_div(M, active.mr) > tuning::kSmallGemmMaxRowTiles) return false;
  AlignedBuffer<T> at(K * cfg.nr), ct(checked_mul(N, M, "gemm scratch"));
  pack_b(StridedMatrix<T>{A.p, A.cs, A.rs}, cfg.nr, 0, K, 0, M, at.data());
  // Each part transposes its own rows of C^T (columns of C) as soon as they are computed, a
  // cache line of C's columns at a time: the block's rows of C^T stay in L1 while each row of
  // C gets one contiguous line. (Reading C^T down its columns for the whole of C missed the
  // cache at every element, and ran serially; one column at a time thrashes L1 when C's row
  // stride is a multiple of 4 KiB.)
  parallel_for(ceil_div(N, cfg.mr), work, [&](int64_t t0, int64_t t1) {
    const int64_t j0 = t0 * cfg.mr, j1 = std::min(N, t1 * cfg.mr);
    for (int64_t i0 = j0; i0 < j1; i0 += cfg.mr) {
      cfg.ukernel_strided_a(K, B.p + i0 * B.cs, B.cs, B.rs, at.data(), ct.data() + i0 * M, M, alpha,
                            T(0), std::min<int64_t>(cfg.mr, N - i0), M);
    }
    constexpr int64_t kLine = 64 / sizeof(T);
    for (int64_t jb = j0; jb < j1; jb += kLine) {
      const int64_t je = std::min(j1, jb + kLine);
      for (int64_t i = 0; i < M; ++i) {
        T* row = c + i * ldc;
        if (beta == T(0)) {
          for (int64_t j = jb; j < je; ++j) row[j] = ct.data()[j * M + i];
        } else {
          for (int64_t j = jb; j < je; ++j) row[j] = ct.data()[j * M + i] + beta * row[j];
        }
      }
    }
  });
  return true;
}

}  // namespace

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rsa, int64_t csa,
          const T* b, int64_t rsb, int64_t csb, T beta, T* c, int64_t ldc) {
  const StridedMatrix<T> A{a, rsa, csa}, B{b, rsb, csb};
  if (gemm_small(gemm_config<T>(), M, N, K, alpha, A, B, beta, c, ldc)) return;
  const GemmConfig<T>& cfg = gemm_config_for(gemm_config<T>(), M, N);
  auto pb = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
    pack_b(B, cfg.nr, k0, kc, j0, nc, dst);
  };
  if (N <= cfg.nr && !gemm_use_split_k(cfg, M, N, K)) {
    // Each element of A meets a single B micro-panel: read A in place instead of copying it.
    gemm_driver<T>(cfg, M, N, K, alpha, InPlaceA<T>{A}, pb, beta, c, ldc);
    return;
  }
  auto pa = [&](int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
    pack_a(A, cfg.mr, i0, mc, k0, kc, dst);
  };
  gemm_driver<T>(cfg, M, N, K, alpha, pa, pb, beta, c, ldc);
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                          const float*, int64_t, int64_t, float, float*, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t);

}  // namespace fastcnn
