// Helpers shared by the thin per-family binding files: dtype dispatch and strided-view checks.
// Bindings convert and check, release the GIL, and call a driver; shapes and argument
// normalisation are the Python layer's job (python/fastcnn/functional.py).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastcnn::bind {

namespace py = pybind11;

void bind_common(py::module_& m);
void bind_gemm(py::module_& m);

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

}  // namespace fastcnn::bind
