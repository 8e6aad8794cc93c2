// Portable scalar micro-kernels: the fallback for any CPU and the reference path that
// FASTCNN_ISA=generic forces in tests. Plain loops the compiler may vectorise with baseline SSE2.
#include "gemm/ukernel.h"

namespace fastcnn {

namespace {

// kPackedA: A is a packed micro-panel, else read through (rsa, csa), or, with aoff, at
// a[aoff[i] + koff[k]]. boff: B's rows are read in place at b + boff[k] instead of from a
// packed panel; kStridedB: at b + k*rsb, and only its first n columns.
template <class T, int MR, int NR, bool kPackedA, bool kStridedB = false>
void gemm_ukernel_generic(int64_t kc, const T* a, int64_t rsa, int64_t csa, const int64_t* aoff,
                          const int64_t* koff, const T* b, const int64_t* boff, int64_t rsb, T* c,
                          int64_t ldc, T alpha, T beta, int64_t m, int64_t n) {
  if (kPackedA) {
    rsa = 1;
    csa = MR;
  }
  T acc[MR][NR] = {};
  const int64_t ncols = kStridedB ? n : NR;
  for (int64_t k = 0; k < kc; ++k) {
    const T* bk = boff != nullptr ? b + boff[k] : kStridedB ? b + k * rsb : b + k * NR;
    for (int i = 0; i < MR; ++i) {
      const int64_t row = i < m ? i : 0;
      const T ai = aoff != nullptr ? a[aoff[row] + koff[k]] : a[row * rsa + k * csa];
      for (int64_t j = 0; j < ncols; ++j) acc[i][j] += ai * bk[j];
    }
  }
  write_tile<T, MR, NR>(c, ldc, m, n, beta, [&](T* out, int64_t ld) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        out[i * ld + j] =
            beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * out[i * ld + j];
  });
}

}  // namespace

#define FASTCNN_DEFINE_GENERIC_GEMM_UKERNELS(dt, T, mr, nr)                                        \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##mr##x##nr##__generic, T) {                      \
    gemm_ukernel_generic<T, mr, nr, true>(kc, a, rsa, csa, nullptr, nullptr, b, nullptr, 0, c,     \
                                          ldc, alpha, beta, m, n);                                 \
  }                                                                                                \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##mr##x##nr##_strided_a__generic, T) {            \
    gemm_ukernel_generic<T, mr, nr, false>(kc, a, rsa, csa, nullptr, nullptr, b, nullptr, 0, c,    \
                                           ldc, alpha, beta, m, n);                                \
  }                                                                                                \
  FASTCNN_DECLARE_GEMM_INDIRECT_B_UKERNEL(dt##_gemm_ukernel_##mr##x##nr##_indirect_b__generic,     \
                                          T) {                                                     \
    gemm_ukernel_generic<T, mr, nr, true>(kc, a, 0, 0, nullptr, nullptr, b, boff, 0, c, ldc, T(1), \
                                          beta, m, n);                                             \
  }                                                                                                \
  FASTCNN_DECLARE_GEMM_INDIRECT_A_UKERNEL(dt##_gemm_ukernel_##mr##x##nr##_indirect_a__generic,     \
                                          T) {                                                     \
    gemm_ukernel_generic<T, mr, nr, false>(kc, a, 0, 0, arow, koff, b, nullptr, 0, c, ldc, T(1),   \
                                           beta, m, n);                                            \
  }                                                                                                \
  FASTCNN_DECLARE_GEMM_STRIDED_AB_UKERNEL(dt##_gemm_ukernel_##mr##x##nr##_strided_ab__generic,     \
                                          T) {                                                     \
    gemm_ukernel_generic<T, mr, nr, false, true>(kc, a, rsa, csa, nullptr, nullptr, b, nullptr,    \
                                                 rsb, c, ldc, alpha, beta, m, n);                  \
  }
FASTCNN_DEFINE_GENERIC_GEMM_UKERNELS(f32, float, 4, 8)
FASTCNN_DEFINE_GENERIC_GEMM_UKERNELS(f64, double, 4, 4)

}  // namespace fastcnn
