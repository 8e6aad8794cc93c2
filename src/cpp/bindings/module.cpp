// fastcnn._core: the compiled module. One bind_<family>.cpp per kernel family registers its
// functions here; this file only assembles them.
#include "bindings/bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastcnn's compiled kernels (private: use fastcnn and fastcnn.functional)";
#ifdef FASTCNN_VERSION
  m.attr("__version__") = FASTCNN_VERSION;
#endif
  fastcnn::bind::bind_common(m);
  fastcnn::bind::bind_gemm(m);
  fastcnn::bind::bind_conv(m);
  fastcnn::bind::bind_pool(m);
  fastcnn::bind::bind_ops(m);
  fastcnn::bind::bind_peak(m);
  fastcnn::bind::bind_testing(m);
}
