// AVX2+FMA micro-kernels: float32 6x16 and float64 6x8. Both keep 12 ymm accumulators (6 rows x
// 2 vectors), load two B vectors and broadcast six A values per k step: 12 FMAs per step keep
// both FMA pipes busy and leave 4 registers for operands. Compiled with -mavx2 -mfma only.
#include <immintrin.h>

#include "gemm/kernels/gemm_ukernel_simd.h"

namespace fastcnn {

namespace {

// The few intrinsics the kernel needs, per element type.
template <class T>
struct Avx2;

template <>
struct Avx2<float> {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  // Lanes below count all ones (the sign bit selects a lane in vmaskmov).
  using Mask = __m256i;
  static Mask mask(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V loadu_mask(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  // Edge tiles go through write_tile's buffer: AMD cores run vmaskmov stores slowly.
  static constexpr bool kMaskedStores = false;
  static void storeu_mask(float* p, Mask m, V v) { _mm256_maskstore_ps(p, m, v); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

template <>
struct Avx2<double> {
  using V = __m256d;
  static constexpr int kLanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V load(const double* p) { return _mm256_load_pd(p); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  using Mask = __m256i;
  static Mask mask(int count) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V loadu_mask(const double* p, Mask m) { return _mm256_maskload_pd(p, m); }
  static constexpr bool kMaskedStores = false;
  static void storeu_mask(double* p, Mask m, V v) { _mm256_maskstore_pd(p, m, v); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
};

}  // namespace

FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f32, float, Avx2, 6, 2, 6x16, avx2)
FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f64, double, Avx2, 6, 2, 6x8, avx2)

}  // namespace fastcnn
