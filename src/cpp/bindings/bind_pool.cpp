// max_pool2d_{forward,backward}, avg_pool2d_{forward,backward} on C-contiguous NCHW arrays.
// Python (fastcnn._pool) validates arguments, computes the geometry and allocates outputs; this
// file only re-checks what the kernels rely on (dtype, contiguity, shapes), releases the GIL
// and calls. geom is the 13-tuple (n, c, h, w, k, r, s, sh, sw, ph, pw, p, q).
#include <limits>

#include "bindings/bindings.h"
#include "pool/pool.h"

namespace fastcnn::bind {

namespace {

Geometry2d pool_geometry(const GeometryTuple& geom, const char* where) {
  const Geometry2d g = to_geometry(geom, where);
  require(g.k == g.c, std::string(where) + ": pooling geometry needs k == c");
  return g;
}

// Calls f(I{}) with I = int64_t or uint8_t, argmax's dtype; uint8 only for windows whose every
// index it holds.
template <class F>
void dispatch_argmax(const py::array& argmax, const Geometry2d& g, const char* where, F&& f) {
  constexpr int64_t kUint8MaxWindow = int64_t{std::numeric_limits<uint8_t>::max()} + 1;
  if (is_dtype<int64_t>(argmax)) {
    f(int64_t{});
  } else if (is_dtype<uint8_t>(argmax)) {
    require(g.r * g.s <= kUint8MaxWindow, std::string(where) +
                                              ": a uint8 argmax needs a window of at most " +
                                              std::to_string(kUint8MaxWindow) + " elements");
    f(uint8_t{});
  } else {
    throw py::type_error(std::string(where) + ": argmax must be int64 or uint8, got " +
                         std::string(py::str(argmax.dtype())));
  }
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "max_pool2d_forward",
      [](const py::array& x, py::array& y, py::array& argmax, const GeometryTuple& geom) {
        constexpr const char* where = "max_pool2d_forward";
        const Geometry2d g = pool_geometry(geom, where);
        dispatch_float(x, where, [&](auto t) {
          using T = decltype(t);
          dispatch_argmax(argmax, g, where, [&](auto i) {
            using I = decltype(i);
            const T* px = data_of<T>(x, x_dims(g), where, "x");
            T* py_ = mutable_data_of<T>(y, y_dims(g), where, "y");
            I* am = mutable_data_of<I>(argmax, y_dims(g), where, "argmax");
            py::gil_scoped_release release;
            max_pool2d_forward<T, I>(g, px, py_, am);
          });
        });
      },
      py::arg("x"), py::arg("y"), py::arg("argmax"), py::arg("geom"),
      "y, argmax = max pooling of x (N,C,H,W) into preallocated (N,C,P,Q) arrays (argmax int64 "
      "or uint8).");

  m.def(
      "max_pool2d_backward",
      [](const py::array& dy, const py::array& argmax, py::array& dx, const GeometryTuple& geom) {
        constexpr const char* where = "max_pool2d_backward";
        const Geometry2d g = pool_geometry(geom, where);
        dispatch_float(dy, where, [&](auto t) {
          using T = decltype(t);
          dispatch_argmax(argmax, g, where, [&](auto i) {
            using I = decltype(i);
            const T* pdy = data_of<T>(dy, y_dims(g), where, "dy");
            const I* am = data_of<I>(argmax, y_dims(g), where, "argmax");
            T* pdx = mutable_data_of<T>(dx, x_dims(g), where, "dx");
            py::gil_scoped_release release;
            // argmax comes from the caller: every index is checked before one is used to write.
            const int64_t count = g.n * g.c * g.p * g.q, window = g.r * g.s;
            bool in_range = true;
            for (int64_t e = 0; e < count; ++e) {
              const auto a = static_cast<int64_t>(am[e]);
              in_range &= a >= 0 && a < window;
            }
            require(in_range, std::string(where) + ": argmax values must be in [0, " +
                                  std::to_string(window) + ")");
            max_pool2d_backward<T, I>(g, pdy, am, pdx);
          });
        });
      },
      py::arg("dy"), py::arg("argmax"), py::arg("dx"), py::arg("geom"),
      "dx (N,C,H,W) = dy (N,C,P,Q) routed to the argmax (int64 or uint8) of each window.");

  m.def(
      "avg_pool2d_forward",
      [](const py::array& x, py::array& y, const GeometryTuple& geom) {
        constexpr const char* where = "avg_pool2d_forward";
        const Geometry2d g = pool_geometry(geom, where);
        dispatch_float(x, where, [&](auto t) {
          using T = decltype(t);
          const T* px = data_of<T>(x, x_dims(g), where, "x");
          T* py_ = mutable_data_of<T>(y, y_dims(g), where, "y");
          py::gil_scoped_release release;
          avg_pool2d_forward<T>(g, px, py_);
        });
      },
      py::arg("x"), py::arg("y"), py::arg("geom"),
      "y = average pooling of x (N,C,H,W) into a preallocated (N,C,P,Q) array.");

  m.def(
      "avg_pool2d_backward",
      [](const py::array& dy, py::array& dx, const GeometryTuple& geom) {
        constexpr const char* where = "avg_pool2d_backward";
        const Geometry2d g = pool_geometry(geom, where);
        dispatch_float(dy, where, [&](auto t) {
          using T = decltype(t);
          const T* pdy = data_of<T>(dy, y_dims(g), where, "dy");
          T* pdx = mutable_data_of<T>(dx, x_dims(g), where, "dx");
          py::gil_scoped_release release;
          avg_pool2d_backward<T>(g, pdy, pdx);
        });
      },
      py::arg("dy"), py::arg("dx"), py::arg("geom"),
      "dx (N,C,H,W) = dy (N,C,P,Q) / (r*s) spread over each window.");
}

}  // namespace fastcnn::bind
