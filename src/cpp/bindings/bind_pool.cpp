// max_pool2d_{forward,backward}, avg_pool2d_{forward,backward} on C-contiguous NCHW arrays.
// Python (fastcnn._pool) validates arguments, computes the geometry and allocates outputs; this
// file only re-checks what the kernels rely on (dtype, contiguity, shapes), releases the GIL
// and calls. geom is the 13-tuple (n, c, h, w, k, r, s, sh, sw, ph, pw, p, q).
#include <array>
#include <tuple>

#include "bindings/bindings.h"
#include "common/geometry.h"
#include "pool/pool.h"

namespace fastcnn::bind {

namespace {

using GeomTuple = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                             int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

Geometry2d to_geometry(const GeomTuple& t, const char* where) {
  const Geometry2d g{std::get<0>(t), std::get<1>(t), std::get<2>(t),  std::get<3>(t),
                     std::get<4>(t), std::get<5>(t), std::get<6>(t),  std::get<7>(t),
                     std::get<8>(t), std::get<9>(t), std::get<10>(t), std::get<11>(t),
                     std::get<12>(t)};
  g.validate(where);
  require(g.k == g.c, std::string(where) + ": pooling geometry needs k == c");
  return g;
}

// `a` must be a C-contiguous array of shape (d0, d1, d2, d3); outputs must also be writeable.
void check_array(const py::array& a, std::array<int64_t, 4> dims, bool output, const char* where,
                 const char* name) {
  const std::string what = std::string(where) + ": " + name;
  require(a.ndim() == 4 && a.shape(0) == dims[0] && a.shape(1) == dims[1] &&
              a.shape(2) == dims[2] && a.shape(3) == dims[3],
          what + " has shape " + shape_str(a) + " but the geometry needs (" +
              std::to_string(dims[0]) + ", " + std::to_string(dims[1]) + ", " +
              std::to_string(dims[2]) + ", " + std::to_string(dims[3]) + ")");
  require((a.flags() & py::array::c_style) != 0, what + " must be C-contiguous");
  if (output) require(a.writeable(), what + " must be writeable");
}

std::array<int64_t, 4> x_dims(const Geometry2d& g) { return {g.n, g.c, g.h, g.w}; }
std::array<int64_t, 4> y_dims(const Geometry2d& g) { return {g.n, g.c, g.p, g.q}; }

template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* mptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

void check_argmax(const py::array& a, const char* where) {
  if (!is_dtype<int64_t>(a)) {
    throw py::type_error(std::string(where) + ": argmax must be int64, got " +
                         std::string(py::str(a.dtype())));
  }
}

[[noreturn]] void dtype_error(const char* where, const char* names) {
  throw py::type_error(std::string(where) + ": " + names + " must all be float32 or all float64");
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "max_pool2d_forward",
      [](const py::array& x, py::array& y, py::array& argmax, const GeomTuple& geom) {
        constexpr const char* where = "max_pool2d_forward";
        const Geometry2d g = to_geometry(geom, where);
        check_array(x, x_dims(g), false, where, "x");
        check_array(y, y_dims(g), true, where, "y");
        check_array(argmax, y_dims(g), true, where, "argmax");
        check_argmax(argmax, where);
        int64_t* am = mptr<int64_t>(argmax);
        if (is_dtype<float>(x) && is_dtype<float>(y)) {
          const float* px = cptr<float>(x);
          float* py_ = mptr<float>(y);
          py::gil_scoped_release release;
          max_pool2d_forward<float>(g, px, py_, am);
        } else if (is_dtype<double>(x) && is_dtype<double>(y)) {
          const double* px = cptr<double>(x);
          double* py_ = mptr<double>(y);
          py::gil_scoped_release release;
          max_pool2d_forward<double>(g, px, py_, am);
        } else {
          dtype_error(where, "x and y");
        }
      },
      py::arg("x"), py::arg("y"), py::arg("argmax"), py::arg("geom"),
      "y, argmax = max pooling of x (N,C,H,W) into preallocated (N,C,P,Q) arrays.");

  m.def(
      "max_pool2d_backward",
      [](const py::array& dy, const py::array& argmax, py::array& dx, const GeomTuple& geom) {
        constexpr const char* where = "max_pool2d_backward";
        const Geometry2d g = to_geometry(geom, where);
        check_array(dy, y_dims(g), false, where, "dy");
        check_array(argmax, y_dims(g), false, where, "argmax");
        check_array(dx, x_dims(g), true, where, "dx");
        check_argmax(argmax, where);
        const int64_t* am = cptr<int64_t>(argmax);
        if (is_dtype<float>(dy) && is_dtype<float>(dx)) {
          const float* pdy = cptr<float>(dy);
          float* pdx = mptr<float>(dx);
          py::gil_scoped_release release;
          max_pool2d_backward<float>(g, pdy, am, pdx);
        } else if (is_dtype<double>(dy) && is_dtype<double>(dx)) {
          const double* pdy = cptr<double>(dy);
          double* pdx = mptr<double>(dx);
          py::gil_scoped_release release;
          max_pool2d_backward<double>(g, pdy, am, pdx);
        } else {
          dtype_error(where, "dy and dx");
        }
      },
      py::arg("dy"), py::arg("argmax"), py::arg("dx"), py::arg("geom"),
      "dx (N,C,H,W) = dy (N,C,P,Q) routed to the argmax of each window.");

  m.def(
      "avg_pool2d_forward",
      [](const py::array& x, py::array& y, const GeomTuple& geom) {
        constexpr const char* where = "avg_pool2d_forward";
        const Geometry2d g = to_geometry(geom, where);
        check_array(x, x_dims(g), false, where, "x");
        check_array(y, y_dims(g), true, where, "y");
        if (is_dtype<float>(x) && is_dtype<float>(y)) {
          const float* px = cptr<float>(x);
          float* py_ = mptr<float>(y);
          py::gil_scoped_release release;
          avg_pool2d_forward<float>(g, px, py_);
        } else if (is_dtype<double>(x) && is_dtype<double>(y)) {
          const double* px = cptr<double>(x);
          double* py_ = mptr<double>(y);
          py::gil_scoped_release release;
          avg_pool2d_forward<double>(g, px, py_);
        } else {
          dtype_error(where, "x and y");
        }
      },
      py::arg("x"), py::arg("y"), py::arg("geom"),
      "y = average pooling of x (N,C,H,W) into a preallocated (N,C,P,Q) array.");

  m.def(
      "avg_pool2d_backward",
      [](const py::array& dy, py::array& dx, const GeomTuple& geom) {
        constexpr const char* where = "avg_pool2d_backward";
        const Geometry2d g = to_geometry(geom, where);
        check_array(dy, y_dims(g), false, where, "dy");
        check_array(dx, x_dims(g), true, where, "dx");
        if (is_dtype<float>(dy) && is_dtype<float>(dx)) {
          const float* pdy = cptr<float>(dy);
          float* pdx = mptr<float>(dx);
          py::gil_scoped_release release;
          avg_pool2d_backward<float>(g, pdy, pdx);
        } else if (is_dtype<double>(dy) && is_dtype<double>(dx)) {
          const double* pdy = cptr<double>(dy);
          double* pdx = mptr<double>(dx);
          py::gil_scoped_release release;
          avg_pool2d_backward<double>(g, pdy, pdx);
        } else {
          dtype_error(where, "dy and dx");
        }
      },
      py::arg("dy"), py::arg("dx"), py::arg("geom"),
      "dx (N,C,H,W) = dy (N,C,P,Q) / (r*s) spread over each window.");
}

}  // namespace fastcnn::bind
