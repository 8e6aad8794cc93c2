// Helpers shared by the thin per-family binding files: dtype dispatch and strided-view checks.
// Bindings convert and check, release the GIL, and call a driver; shapes and argument
// normalisation are the Python layer's job (python/fastcnn/functional.py).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/geometry.h"

namespace fastcnn::bind {

namespace py = pybind11;

void bind_common(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    if (a.ndim() == 1 || i + 1 < a.ndim()) s += a.ndim() == 1 ? "," : ", ";
  }
  return s + ")";
}

template <class T>
bool is_dtype(const py::array& a) {
  return a.dtype().is(py::dtype::of<T>());
}

inline void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// Stride of axis `axis` in elements; the view must be element-aligned.
inline int64_t elem_stride(const py::array& a, int axis, const char* name) {
  const int64_t bytes = a.strides(axis);
  require(bytes % static_cast<int64_t>(a.itemsize()) == 0,
          std::string(name) + ": strides must be multiples of the item size");
  return bytes / static_cast<int64_t>(a.itemsize());
}

// The 13-tuple (n, c, h, w, k, r, s, sh, sw, ph, pw, p, q) of fastcnn._validation.Geometry2d.
inline Geometry2d to_geometry(const py::tuple& t, const char* where) {
  require(t.size() == 13, std::string(where) + ": geometry must have 13 fields");
  int64_t v[13];
  for (int i = 0; i < 13; ++i) v[i] = t[i].cast<int64_t>();
  Geometry2d g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]};
  g.validate(where);
  return g;
}

// Pointer to the data of a C-contiguous array of T holding exactly `size` elements.
template <class T>
const T* data_of(const py::array& a, int64_t size, const char* where, const char* name) {
  if (!is_dtype<T>(a)) {
    throw py::type_error(std::string(where) + ": " + name + " has the wrong dtype");
  }
  require((a.flags() & py::array::c_style) != 0 && a.size() == size,
          std::string(where) + ": " + name + " must be C-contiguous with " +
              std::to_string(size) + " elements, got shape " + shape_str(a));
  return static_cast<const T*>(a.data());
}

template <class T>
T* mutable_data_of(py::array& a, int64_t size, const char* where, const char* name) {
  data_of<T>(a, size, where, name);
  require(a.writeable(), std::string(where) + ": " + name + " must be writeable");
  return static_cast<T*>(a.mutable_data());
}

}  // namespace fastcnn::bind
