// The micro-kernel contract and the table that selects micro-kernels for the active ISA.
// A micro-kernel only does register-blocked FMAs over packed panels plus the alpha/beta
// epilogue: it allocates nothing, starts no threads, and never touches C outside its m x n tile.
#pragma once

#include <cstdint>
#include <vector>

#include "common/cpu.h"

namespace fastcnn {

// c[0:m, 0:n] (row stride ldc) = alpha * sum_k A(i, k) * b[k*NR + j] + beta * c
// b: kc x NR packed B micro-panel (zero-padded at the edge). A is either a packed kc x MR
// micro-panel (A(i,k) = a[k*MR + i]; rsa, csa ignored) or, for the *_strided_a kernels, read in
// place: A(i,k) = a[i*rsa + k*csa] for i < m. 1 <= m <= MR, 1 <= n <= NR.
// When beta == 0, c is written without being read.
// Alignment: a packed b (and a packed a) must start on a 64-byte boundary: the kernels read
// packed panels with aligned vector loads. The driver's scratch buffers (common/memory.h,
// kAlign) are 64-byte aligned, and NR is a multiple of the vector width, so every row k of a
// panel (b + k*NR) stays aligned; any other caller must keep that true.
template <class T>
using GemmUkernelFn = void (*)(int64_t kc, const T* a, int64_t rsa, int64_t csa, const T* b, T* c,
                               int64_t ldc, T alpha, T beta, int64_t m, int64_t n);

// The strided-AB variant, for small products that pack nothing: A is read in place as in the
// *_strided_a kernels, and B too, B(k, j) = b[k*rsb + j] for j < n only (the edge columns are
// loaded under a mask, so nothing past column n is read).
template <class T>
using GemmStridedAbUkernelFn = void (*)(int64_t kc, const T* a, int64_t rsa, int64_t csa,
                                        const T* b, int64_t rsb, T* c, int64_t ldc, T alpha, T beta,
                                        int64_t m, int64_t n);

// The indirect-B variant: A is a packed micro-panel as above, and B is read in place through
// row offsets, B(k, j) = b[boff[k] + j], for all j < NR even when n < NR (the caller keeps that
// memory readable): a convolution's im2col rows read straight from the padded image. alpha = 1.
template <class T>
using GemmIndirectBUkernelFn = void (*)(int64_t kc, const T* a, const T* b, const int64_t* boff,
                                        T* c, int64_t ldc, T beta, int64_t m, int64_t n);

// The indirect-A variant: B is a packed micro-panel, and A is read in place through row and
// column offsets, A(i, k) = a[arow[i] + koff[k]] for i < m: a convolution's im2col matrix,
// transposed (rows are output pixels anywhere in a batch of padded images). alpha = 1.
template <class T>
using GemmIndirectAUkernelFn = void (*)(int64_t kc, const T* a, const int64_t* arow,
                                        const int64_t* koff, const T* b, T* c, int64_t ldc, T beta,
                                        int64_t m, int64_t n);

// The widest micro-tile (NR) of any configuration (gemm.cpp checks each one).
constexpr int kMaxNr = 32;

template <class T>
struct GemmConfig {
  GemmUkernelFn<T> ukernel = nullptr;                      // packed A
  GemmUkernelFn<T> ukernel_strided_a = nullptr;            // A read in place
  GemmIndirectBUkernelFn<T> ukernel_indirect_b = nullptr;  // packed A, B rows read in place
  GemmIndirectAUkernelFn<T> ukernel_indirect_a = nullptr;  // A read by offsets, packed B
  GemmStridedAbUkernelFn<T> ukernel_strided_ab = nullptr;  // A and B read in place
  int mr = 0;                                              // rows of C per micro-tile
  int nr = 0;  // columns of C per micro-tile (a multiple of the vector width)
  // Cache blocking, see gemm.cpp: a kc x nr B micro-panel stays in L1, an mc x kc A block in
  // L2, a kc x nc B panel in L3.
  int64_t mc = 0, kc = 0, nc = 0;
  const char* name = "";
  // Where mc, kc, nc come from: "measured" on this microarchitecture, "modelled" from its caches,
  // or "FASTCNN_GEMM_BLOCKING" (set by hand, for tuning).
  const char* blocking = "modelled";
};

// MC, KC, NC from the cache sizes by the analytical model of gemm.cpp (used for every CPU
// whose blocking was not measured), for an mr x nr tile of elem_bytes-wide elements.
struct GemmBlocking {
  int64_t mc = 0, kc = 0, nc = 0;
};
GemmBlocking model_gemm_blocking(int mr, int nr, int elem_bytes, const CpuCaches& caches);

// The configuration for the ISA active now (see common/cpu.h), and the one for a given ISA.
template <class T>
const GemmConfig<T>& gemm_config();
template <class T>
const GemmConfig<T>& gemm_config(Isa isa);

// `active`, or a better-fitting tile for an M x N product: a narrower one when N is at most
// half a micro-tile wide, a shorter one when few rows (M) would leave a 12-row tile part empty
// or when tiles may have at most max_mr rows (the indirect-A kernel keeps a pointer per row in
// a register: 12 of them spill).
template <class T>
const GemmConfig<T>& gemm_config_for(const GemmConfig<T>& active, int64_t M, int64_t N,
                                     int max_mr = 1 << 30);

// Every configuration of a given ISA, gemm_config(isa) first: the tiles gemm_config_for picks
// from, which the micro-kernel tests (bindings/bind_testing.cpp) run one by one.
template <class T>
std::vector<const GemmConfig<T>*> gemm_configs(Isa isa);

// Micro-kernels, defined in kernels/gemm_ukernel__<isa>.cpp, named
// <dtype>_gemm_ukernel_<MR>x<NR>[_strided_a|_indirect_b|_indirect_a|_strided_ab]__<isa>;
// FASTCNN_DECLARE_GEMM_UKERNELS declares a tile's five.
#define FASTCNN_DECLARE_GEMM_UKERNEL(name, T)                                                \
  void name(int64_t kc, const T* a, int64_t rsa, int64_t csa, const T* b, T* c, int64_t ldc, \
            T alpha, T beta, int64_t m, int64_t n)
#define FASTCNN_DECLARE_GEMM_INDIRECT_B_UKERNEL(name, T)                                        \
  void name(int64_t kc, const T* a, const T* b, const int64_t* boff, T* c, int64_t ldc, T beta, \
            int64_t m, int64_t n)
#define FASTCNN_DECLARE_GEMM_INDIRECT_A_UKERNEL(name, T)                                        \
  void name(int64_t kc, const T* a, const int64_t* arow, const int64_t* koff, const T* b, T* c, \
            int64_t ldc, T beta, int64_t m, int64_t n)
#define FASTCNN_DECLARE_GEMM_STRIDED_AB_UKERNEL(name, T)                                     \
  void name(int64_t kc, const T* a, int64_t rsa, int64_t csa, const T* b, int64_t rsb, T* c, \
            int64_t ldc, T alpha, T beta, int64_t m, int64_t n)
#define FASTCNN_DECLARE_GEMM_UKERNELS(dt, T, tile, isa)                                     \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##tile##__##isa, T);                       \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##tile##_strided_a__##isa, T);             \
  FASTCNN_DECLARE_GEMM_INDIRECT_B_UKERNEL(dt##_gemm_ukernel_##tile##_indirect_b__##isa, T); \
  FASTCNN_DECLARE_GEMM_INDIRECT_A_UKERNEL(dt##_gemm_ukernel_##tile##_indirect_a__##isa, T); \
  FASTCNN_DECLARE_GEMM_STRIDED_AB_UKERNEL(dt##_gemm_ukernel_##tile##_strided_ab__##isa, T)
FASTCNN_DECLARE_GEMM_UKERNELS(f32, float, 4x8, generic);
FASTCNN_DECLARE_GEMM_UKERNELS(f64, double, 4x4, generic);
FASTCNN_DECLARE_GEMM_UKERNELS(f32, float, 6x16, avx2);
FASTCNN_DECLARE_GEMM_UKERNELS(f64, double, 6x8, avx2);
FASTCNN_DECLARE_GEMM_UKERNELS(f32, float, 12x32, avx512);
FASTCNN_DECLARE_GEMM_UKERNELS(f64, double, 12x16, avx512);
FASTCNN_DECLARE_GEMM_UKERNELS(f32, float, 8x32, avx512);
FASTCNN_DECLARE_GEMM_UKERNELS(f64, double, 8x16, avx512);
FASTCNN_DECLARE_GEMM_UKERNELS(f32, float, 8x16, avx512);
FASTCNN_DECLARE_GEMM_UKERNELS(f64, double, 8x8, avx512);

// Writes a micro-tile through `epilogue(ptr, ld)`, which stores a full MR x NR tile. Edge tiles
// go through a local buffer so the full-tile code (and so the rounding) is the same everywhere.
template <class T, int MR, int NR, class Epilogue>
inline void write_tile(T* c, int64_t ldc, int64_t m, int64_t n, T beta, Epilogue&& epilogue) {
  if (m == MR && n == NR) {
    epilogue(c, ldc);
    return;
  }
  alignas(64) T tmp[MR * NR];
  if (beta != T(0)) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) tmp[i * NR + j] = c[i * ldc + j];
  }
  epilogue(tmp, int64_t{NR});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = tmp[i * NR + j];
}

}  // namespace fastcnn
