// General matrix multiply on strided operands: C = alpha * op(A) . op(B) + beta * C.
// Transposes are expressed as strides (op(A) element (i,k) at a[i*rsa + k*csa]), so numpy
// views of any layout are used without a copy. C is row-major with row stride ldc.
#pragma once

#include <cstdint>

namespace fastcnn {

// M x N result, inner dimension K; any of M, N, K may be 0.
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rsa, int64_t csa,
          const T* b, int64_t rsb, int64_t csb, T beta, T* c, int64_t ldc);

}  // namespace fastcnn
