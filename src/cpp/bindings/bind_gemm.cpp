// gemm(a, b, c, alpha, beta): c = alpha * a . b + beta * c on 2-D views. Transposes arrive as
// transposed numpy views (strides), so nothing is copied here.
#include "bindings/bindings.h"
#include "gemm/gemm.h"

namespace fastcnn::bind {

namespace {

template <class T>
void gemm_typed(const py::array& a, const py::array& b, py::array& c, double alpha, double beta) {
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  const int64_t rsa = elem_stride(a, 0, "a"), csa = elem_stride(a, 1, "a");
  const int64_t rsb = elem_stride(b, 0, "b"), csb = elem_stride(b, 1, "b");
  const int64_t ldc = elem_stride(c, 0, "out");
  const T* pa = static_cast<const T*>(a.data());
  const T* pb = static_cast<const T*>(b.data());
  T* pc = static_cast<T*>(c.mutable_data());
  py::gil_scoped_release release;
  gemm<T>(M, N, K, static_cast<T>(alpha), pa, rsa, csa, pb, rsb, csb, static_cast<T>(beta), pc,
          ldc);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def(
      "gemm",
      [](const py::array& a, const py::array& b, py::array& c, double alpha, double beta) {
        require(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, "gemm: a, b and out must be 2-D");
        require(a.shape(1) == b.shape(0) && c.shape(0) == a.shape(0) && c.shape(1) == b.shape(1),
                "gemm: shapes do not agree: a" + shape_str(a) + " b" + shape_str(b) + " out" +
                    shape_str(c));
        require(c.writeable(), "gemm: out must be writeable");
        require(c.shape(0) == 0 || c.shape(1) <= 1 ||
                    c.strides(1) == static_cast<py::ssize_t>(c.itemsize()),
                "gemm: out must have unit stride along its last axis");
        if (is_dtype<float>(a) && is_dtype<float>(b) && is_dtype<float>(c)) {
          gemm_typed<float>(a, b, c, alpha, beta);
        } else if (is_dtype<double>(a) && is_dtype<double>(b) && is_dtype<double>(c)) {
          gemm_typed<double>(a, b, c, alpha, beta);
        } else {
          throw py::type_error("gemm: a, b and out must all be float32 or all float64");
        }
      },
      py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha"), py::arg("beta"),
      "out = alpha * a @ b + beta * out on strided 2-D views (GIL released).");
}

}  // namespace fastcnn::bind
