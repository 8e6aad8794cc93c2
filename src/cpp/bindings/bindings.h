// Helpers shared by the thin per-family binding files: dtype dispatch and strided-view checks.
// Bindings convert and check, release the GIL, and call a driver; shapes and argument
// normalisation are the Python layer's job (python/fastcnn/functional.py).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common/geometry.h"

namespace fastcnn {
struct CpuCaches;
}

namespace fastcnn::bind {

namespace py = pybind11;

void bind_common(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_ops(py::module_& m);
void bind_peak(py::module_& m);
void bind_testing(py::module_& m);  // fastcnn._core._testing, private (kernel tests)

// cpu_info()["caches"]'s dict (bind_common.cpp), also returned by the _testing hooks.
py::dict caches_dict(const CpuCaches& caches);

using Dims = std::vector<int64_t>;

// "(2, 3)" / "(5,)", as Python prints shapes.
inline std::string dims_str(const Dims& d) {
  std::string s = "(";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

inline std::string shape_str(const py::array& a) {
  return dims_str(Dims(a.shape(), a.shape() + a.ndim()));
}

// By value, not identity: an unpickled (or otherwise rebuilt) float32 dtype is a different
// object equal to numpy's canonical one. numpy's PyArray_EquivTypes (behind array_t's check)
// also rejects a non-native byte order, which the Python layer converts before calling.
template <class T>
bool is_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// Stride of axis `axis` in elements; the view must be element-aligned: its strides and, unless
// it is empty (nothing is loaded), its data address multiples of the item size (a misaligned
// load is undefined behaviour in C++, which UBSan reports even where x86 would tolerate it).
inline int64_t elem_stride(const py::array& a, int axis, const char* name) {
  const int64_t bytes = a.strides(axis);
  const auto item = static_cast<int64_t>(a.itemsize());
  require(a.size() == 0 || reinterpret_cast<std::uintptr_t>(a.data()) % item == 0,
          std::string(name) + ": must be aligned to its item size");
  require(bytes % item == 0, std::string(name) + ": strides must be multiples of the item size");
  return bytes / static_cast<int64_t>(a.itemsize());
}

// The 13-tuple (n, c, h, w, k, r, s, sh, sw, ph, pw, p, q) of fastcnn._validation.Geometry2d;
// a tuple of another length or type is a TypeError from pybind11's conversion.
using GeometryTuple = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                 int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

inline Geometry2d to_geometry(const GeometryTuple& t, const char* where) {
  const Geometry2d g = std::apply([](auto... v) { return Geometry2d{v...}; }, t);
  g.validate(where);
  return g;
}

inline Dims x_dims(const Geometry2d& g) { return {g.n, g.c, g.h, g.w}; }
inline Dims y_dims(const Geometry2d& g) { return {g.n, g.k, g.p, g.q}; }
inline Dims w_dims(const Geometry2d& g) { return {g.k, g.c, g.r, g.s}; }

// Data of `a`, which must be a C-contiguous array of T, aligned unless empty, with exactly the
// shape `dims`
// (TypeError for the wrong dtype, ValueError otherwise; the Python layer copies a misaligned
// view first, fastcnn._validation.kernel_array).
template <class T>
const T* data_of(const py::array& a, const Dims& dims, const char* where, const char* name) {
  // Messages are built only on failure: small-op calls run this several times per call.
  auto what = [&] { return std::string(where) + ": " + name; };
  if (!is_dtype<T>(a)) {
    throw py::type_error(what() + " has dtype " + std::string(py::str(a.dtype())) + ", expected " +
                         std::string(py::str(py::dtype::of<T>())));
  }
  const bool same_shape = static_cast<std::size_t>(a.ndim()) == dims.size() &&
                          std::equal(dims.begin(), dims.end(), a.shape());
  if (!same_shape) {
    require(false,
            what() + " has shape " + shape_str(a) + " but the geometry needs " + dims_str(dims));
  }
  if ((a.flags() & py::array::c_style) == 0) require(false, what() + " must be C-contiguous");
  if (a.size() != 0 && reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0) {
    require(false, what() + " must be aligned to its item size");
  }
  return static_cast<const T*>(a.data());
}

template <class T>
T* mutable_data_of(py::array& a, const Dims& dims, const char* where, const char* name) {
  data_of<T>(a, dims, where, name);
  require(a.writeable(), std::string(where) + ": " + name + " must be writeable");
  return static_cast<T*>(a.mutable_data());
}

// Calls f(T{}) with T = float or double, the dtype of `a` (the kernels' element type).
template <class F>
void dispatch_float(const py::array& a, const char* where, F&& f) {
  if (is_dtype<float>(a)) {
    f(float{});
  } else if (is_dtype<double>(a)) {
    f(double{});
  } else {
    throw py::type_error(std::string(where) + ": arrays must be float32 or float64, got " +
                         std::string(py::str(a.dtype())));
  }
}

}  // namespace fastcnn::bind
