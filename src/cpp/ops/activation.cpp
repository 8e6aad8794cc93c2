// ReLU and sigmoid, forward and backward, on flat C-contiguous arrays (float and double).
// Written as branch-free selects gcc -O3 vectorises (no intrinsics); sigmoid calls scalar
// std::exp, which is the only way to stay within an ulp of numpy without -ffast-math.
//
// Layout contract: x, y, dy, dx are n contiguous elements; outputs never alias inputs except
// in the caller's own in-place use, which is elementwise-safe.
#include <cmath>
#include <cstdint>

#include "ops/elementwise.h"
#include "ops/ops.h"

namespace fastcnn {

using ops_detail::element_work;
using ops_detail::parallel_elements;

template <class T>
void relu_forward(int64_t n, const T* x, T* y) {
  parallel_elements(n, element_work(2, sizeof(T)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T v = x[i];
      // numpy's maximum(v, 0): v if v > 0 or v is NaN, else +0 (so -0 becomes +0).
      y[i] = !(v <= T(0)) ? v : T(0);
    }
  });
}

template <class T>
void relu_backward(int64_t n, const T* dy, const T* x, T* dx) {
  parallel_elements(n, element_work(3, sizeof(T)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T d = dy[i];  // loaded unconditionally so the select vectorises
      dx[i] = x[i] > T(0) ? d : T(0);
    }
  });
}

template <class T>
void sigmoid_forward(int64_t n, const T* x, T* y) {
  parallel_elements(n, element_work(2, sizeof(T), 20), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T v = x[i];
      const T ex = std::exp(-std::fabs(v));  // <= 1: never overflows
      y[i] = (v >= T(0) ? T(1) : ex) / (T(1) + ex);
    }
  });
}

template <class T>
void sigmoid_backward(int64_t n, const T* dy, const T* y, T* dx) {
  parallel_elements(n, element_work(3, sizeof(T)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
  });
}

#define FASTCNN_INSTANTIATE_ACTIVATION(T)                          \
  template void relu_forward<T>(int64_t, const T*, T*);            \
  template void relu_backward<T>(int64_t, const T*, const T*, T*); \
  template void sigmoid_forward<T>(int64_t, const T*, T*);         \
  template void sigmoid_backward<T>(int64_t, const T*, const T*, T*);
FASTCNN_INSTANTIATE_ACTIVATION(float)
FASTCNN_INSTANTIATE_ACTIVATION(double)
#undef FASTCNN_INSTANTIATE_ACTIVATION

}  // namespace fastcnn
