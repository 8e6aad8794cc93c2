// Portable scalar micro-kernels: the fallback for any CPU and the reference path that
// FASTCNN_ISA=generic forces in tests. Plain loops the compiler may vectorise with baseline SSE2.
#include "gemm/ukernel.h"

namespace fastcnn {

namespace {

template <class T, int MR, int NR, bool kPackedA>
void gemm_ukernel_generic(int64_t kc, const T* a, int64_t rsa, int64_t csa, const T* b, T* c,
                          int64_t ldc, T alpha, T beta, int64_t m, int64_t n) {
  if (kPackedA) {
    rsa = 1;
    csa = MR;
  }
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[(i < m ? i : 0) * rsa + k * csa];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    b += NR;
  }
  write_tile<T, MR, NR>(c, ldc, m, n, beta, [&](T* out, int64_t ld) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        out[i * ld + j] = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * out[i * ld + j];
  });
}

}  // namespace

FASTCNN_DECLARE_GEMM_UKERNEL(f32_gemm_ukernel_4x8__generic, float) {
  gemm_ukernel_generic<float, 4, 8, true>(kc, a, rsa, csa, b, c, ldc, alpha, beta, m, n);
}

FASTCNN_DECLARE_GEMM_UKERNEL(f32_gemm_ukernel_4x8_strided_a__generic, float) {
  gemm_ukernel_generic<float, 4, 8, false>(kc, a, rsa, csa, b, c, ldc, alpha, beta, m, n);
}

FASTCNN_DECLARE_GEMM_UKERNEL(f64_gemm_ukernel_4x4__generic, double) {
  gemm_ukernel_generic<double, 4, 4, true>(kc, a, rsa, csa, b, c, ldc, alpha, beta, m, n);
}

FASTCNN_DECLARE_GEMM_UKERNEL(f64_gemm_ukernel_4x4_strided_a__generic, double) {
  gemm_ukernel_generic<double, 4, 4, false>(kc, a, rsa, csa, b, c, ldc, alpha, beta, m, n);
}

}  // namespace fastcnn
