// Dropout (classic, non-inverted) with the reference's counter-based RNG, float and double.
// The mask bit of flat element i depends only on (seed, offset + i, ratio), never on which thread
// or block computes it, so masks are bit-identical to fastcnn.reference.dropout_mask for any shape
// and thread count. Leaves out inverted dropout: the reference has none.
//
// Layout contract: x, y and keep are n contiguous elements (C order of the caller's shape);
// keep holds one byte per element, 0 or 1 (numpy bool).
//
// The stream: key = splitmix64(seed); u_i = (splitmix64(key + i) >> 11) * 2**-53 (a double
// that is exact); keep_i = u_i >= ratio. Scaling by 2**53 is exact too, so the test is done on
// integers: keep_i = (splitmix64(key + i) >> 11) >= ceil(ratio * 2**53). An array that is a
// part of a larger one (a data-parallel shard of a batch) starts at stream index `offset`:
// its element j is the larger array's element offset + j.
#include <cmath>
#include <cstdint>

#include "ops/elementwise.h"
#include "ops/ops.h"

namespace fastcnn {

namespace {

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// ceil(ratio * 2**53) for ratio in [0, 1]: in [0, 2**53], exact in double and in uint64.
inline uint64_t keep_threshold(double ratio) {
  return static_cast<uint64_t>(std::ceil(ratio * 9007199254740992.0));
}

inline uint8_t keep_bit(uint64_t key, uint64_t i, uint64_t threshold) {
  return static_cast<uint8_t>((splitmix64(key + i) >> 11) >= threshold);
}

}  // namespace

void dropout_mask(int64_t n, double ratio, uint64_t seed, uint64_t offset, uint8_t* keep) {
  const uint64_t key = splitmix64(seed), threshold = keep_threshold(ratio);
  ops_detail::parallel_elements(n, ops_detail::element_work(1, 1, 10), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      keep[i] = keep_bit(key, offset + static_cast<uint64_t>(i), threshold);
  });
}

template <class T>
void dropout_forward(int64_t n, const T* x, double ratio, uint64_t seed, uint64_t offset,
                     uint8_t* keep, T* y) {
  const uint64_t key = splitmix64(seed), threshold = keep_threshold(ratio);
  ops_detail::parallel_elements(n, Work{10, 2.0 * sizeof(T) + 1}, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint8_t k = keep_bit(key, offset + static_cast<uint64_t>(i), threshold);
      keep[i] = k;
      y[i] = x[i] * T(k);  // x * 0 as numpy does it: -0 for negative x, NaN for NaN and inf
    }
  });
}

template <class T>
void dropout_apply(int64_t n, const T* x, const uint8_t* keep, T* y) {
  ops_detail::parallel_elements(n, Work{0, 2.0 * sizeof(T) + 1}, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T k = keep[i] != 0 ? T(1) : T(0);  // a select vectorises, a bool-to-T cast does not
      y[i] = x[i] * k;
    }
  });
}

template <class T>
void scale_forward(int64_t n, const T* x, double scale, T* y) {
  const T s = static_cast<T>(scale);
  ops_detail::parallel_elements(n, ops_detail::element_work(2, sizeof(T)),
                                [&](int64_t b, int64_t e) {
                                  for (int64_t i = b; i < e; ++i) y[i] = x[i] * s;
                                });
}

#define FASTCNN_INSTANTIATE_DROPOUT(T)                                                           \
  template void dropout_forward<T>(int64_t, const T*, double, uint64_t, uint64_t, uint8_t*, T*); \
  template void dropout_apply<T>(int64_t, const T*, const uint8_t*, T*);                         \
  template void scale_forward<T>(int64_t, const T*, double, T*);
FASTCNN_INSTANTIATE_DROPOUT(float)
FASTCNN_INSTANTIATE_DROPOUT(double)
#undef FASTCNN_INSTANTIATE_DROPOUT

}  // namespace fastcnn
