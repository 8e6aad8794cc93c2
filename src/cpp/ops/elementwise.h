// Internal helper of the ops family: runs an elementwise body over [0, n) in contiguous ranges.
// Whether a second thread runs is the parallel wrapper's decision (common/parallel.h) from the
// work of one element times n: small arrays stay on the calling thread.
#pragma once

#include <cstdint>

#include "common/memory.h"
#include "common/parallel.h"

namespace fastcnn::ops_detail {

// Work of an element that reads and writes `arrays` values of `bytes` each and does `flops`
// floating-point operations beyond a few.
inline Work element_work(int arrays, double bytes, double flops = 0) {
  return Work{flops, arrays * bytes};
}

// Calls body(begin, end) over contiguous ranges covering [0, n); each element is handled by
// exactly one call, so elementwise results never depend on the split.
template <class Body>
void parallel_elements(int64_t n, Work per_element, Body&& body) {
  parallel_for(n, per_element * static_cast<double>(n), body);
}

}  // namespace fastcnn::ops_detail
