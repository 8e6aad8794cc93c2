// Geometry of a 2-D sliding-window op on NCHW data, shared by convolution and pooling.
// x is (n, c, h, w); the window is (r, s); y is (n, k, p, q) with
// p = (h + 2*ph - r) / sh + 1 and q = (w + 2*pw - s) / sw + 1; for pooling k == c.
// Python (fastcnn._validation.Geometry2d) computes and validates it; C++ re-checks it cheaply.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/memory.h"

namespace fastcnn {

struct Geometry2d {
  int64_t n, c, h, w, k, r, s, sh, sw, ph, pw, p, q;

  int64_t x_size() const {
    return checked_mul(checked_mul(n, c, "x"), checked_mul(h, w, "x"), "x");
  }
  int64_t y_size() const {
    return checked_mul(checked_mul(n, k, "y"), checked_mul(p, q, "y"), "y");
  }

  // Throws std::invalid_argument unless the fields are positive and consistent.
  void validate(const char* where) const {
    const bool positive = n >= 0 && c >= 1 && h >= 1 && w >= 1 && k >= 1 && r >= 1 && s >= 1 &&
                          sh >= 1 && sw >= 1 && ph >= 0 && pw >= 0;
    // The window must fit the padded input (C++ division truncates toward zero, so p alone
    // would let h + 2*ph < r through).
    if (!positive || h + 2 * ph < r || w + 2 * pw < s || p != (h + 2 * ph - r) / sh + 1 ||
        q != (w + 2 * pw - s) / sw + 1 || p < 1 || q < 1) {
      throw std::invalid_argument(std::string(where) + ": inconsistent window geometry");
    }
    (void)x_size();
    (void)y_size();
  }
};

}  // namespace fastcnn
