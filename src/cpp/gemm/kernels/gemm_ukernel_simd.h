// The register-blocked micro-kernel shared by the SIMD ISAs, written once over a small traits
// type S (vector type, lane count, load/broadcast/fma). Include it ONLY from a kernels/*__<isa>.cpp
// file compiled with that ISA's flags: the template is instantiated there, with those flags.
#pragma once

#include <cstdint>

#include "gemm/ukernel.h"

namespace fastcnn {

// How a micro-kernel reads its operands (see ukernel.h): packed A and B; A read in place
// through its strides; packed A with B's rows read in place through row offsets; or A read in
// place through row and column offsets with packed B.
enum class Operands { kPacked, kStridedA, kIndirectB, kIndirectA };

// MR rows x NV vectors of accumulators; see the ISA files for the register budget of each
// shape. kStridedA: A is read in place through its strides, for products where each A element
// is used once and packing would only copy it; rows past m then re-read row 0 (valid memory;
// write_tile discards them). kIndirectB: row k of B starts at b + boff[k] (unaligned loads).
// kIndirectA: A(i, k) = a[aoff[i] + koff[k]] (aoff: the rows' offsets), rows past m re-read
// row 0.
template <class S, class T, int MR, int NV, Operands kOps>
inline __attribute__((always_inline)) void gemm_ukernel_simd(int64_t kc, const T* a, int64_t rsa,
                                                             int64_t csa, const int64_t* aoff,
                                                             const int64_t* koff, const T* b,
                                                             const int64_t* boff, T* c,
                                                             int64_t ldc, T alpha, T beta,
                                                             int64_t m, int64_t n) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int NR = NV * L;
  constexpr bool kPackedA = kOps == Operands::kPacked || kOps == Operands::kIndirectB;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();

  const T* arow[MR];
  if constexpr (kPackedA) {
    rsa = 1;
    csa = MR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if constexpr (kOps == Operands::kIndirectA) {
      arow[i] = a + aoff[i < m ? i : 0];
    } else {
      arow[i] = a + (i < m ? i : 0) * rsa;
    }
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    if constexpr (kOps == Operands::kIndirectB) {
      const T* row = b + boff[k];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = S::loadu(row + v * L);
    } else {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
      b += NR;
    }
    const int64_t acol = kOps == Operands::kIndirectA ? koff[k] : k * csa;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = kPackedA ? S::broadcast(a + i) : S::broadcast(arow[i] + acol);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
    if constexpr (kPackedA) a += MR;
  }

  const V va = S::set1(alpha);
  const V vb = S::set1(beta);
  write_tile<T, MR, NR>(c, ldc, m, n, beta, [&](T* out, int64_t ld) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      T* row = out + i * ld;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        V r = S::mul(va, acc[i][v]);
        if (beta != T(0)) r = S::fma(vb, S::loadu(row + v * L), r);
        S::storeu(row + v * L, r);
      }
    }
  });
}

// Defines <dt>_gemm_ukernel_<tile>__<isa> (packed A) and its _strided_a, _indirect_b and
// _indirect_a twins as instances of gemm_ukernel_simd over the ISA's traits template, for
// tiles of mr rows and nv vectors.
#define FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(dt, T, traits, mr, nv, tile, isa)                      \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##tile##__##isa, T) {                            \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kPacked>(                                   \
        kc, a, rsa, csa, nullptr, nullptr, b, nullptr, c, ldc, alpha, beta, m, n);                \
  }                                                                                               \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##tile##_strided_a__##isa, T) {                  \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kStridedA>(                                 \
        kc, a, rsa, csa, nullptr, nullptr, b, nullptr, c, ldc, alpha, beta, m, n);                \
  }                                                                                               \
  FASTCNN_DECLARE_GEMM_INDIRECT_B_UKERNEL(dt##_gemm_ukernel_##tile##_indirect_b__##isa, T) {      \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kIndirectB>(                                \
        kc, a, 0, 0, nullptr, nullptr, b, boff, c, ldc, T(1), beta, m, n);                        \
  }                                                                                               \
  FASTCNN_DECLARE_GEMM_INDIRECT_A_UKERNEL(dt##_gemm_ukernel_##tile##_indirect_a__##isa, T) {      \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kIndirectA>(kc, a, 0, 0, arow, koff, b,     \
                                                                  nullptr, c, ldc, T(1), beta, m, \
                                                                  n);                             \
  }

}  // namespace fastcnn
