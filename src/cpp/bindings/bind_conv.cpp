// conv2d_forward / conv2d_backward_data / conv2d_backward_weights on C-contiguous arrays whose
// shapes python/fastcnn/_conv.py has checked; the geometry arrives as a 13-tuple.
#include "bindings/bindings.h"
#include "conv/conv.h"

namespace fastcnn::bind {

namespace {

template <class T>
void forward(const py::array& x, const py::array& w, const py::object& b, py::array& y,
             const Geometry2d& g, bool relu) {
  const char* where = "conv2d_forward";
  const T* px = data_of<T>(x, g.x_size(), where, "x");
  const T* pw = data_of<T>(w, g.k * g.c * g.r * g.s, where, "w");
  const T* pb = b.is_none() ? nullptr : data_of<T>(b.cast<py::array>(), g.k, where, "b");
  T* py_ = mutable_data_of<T>(y, g.y_size(), where, "y");
  py::gil_scoped_release release;
  conv2d_forward<T>(g, px, pw, pb, py_, relu);
}

template <class T>
void backward_data(const py::array& dy, const py::array& w, py::array& dx, const Geometry2d& g) {
  const char* where = "conv2d_backward";
  const T* pdy = data_of<T>(dy, g.y_size(), where, "dy");
  const T* pw = data_of<T>(w, g.k * g.c * g.r * g.s, where, "w");
  T* pdx = mutable_data_of<T>(dx, g.x_size(), where, "dx");
  py::gil_scoped_release release;
  conv2d_backward_data<T>(g, pdy, pw, pdx);
}

template <class T>
void backward_weights(const py::array& dy, const py::array& x, py::array& dw, py::object& db,
                      const Geometry2d& g) {
  const char* where = "conv2d_backward";
  const T* pdy = data_of<T>(dy, g.y_size(), where, "dy");
  const T* px = data_of<T>(x, g.x_size(), where, "x");
  T* pdw = mutable_data_of<T>(dw, g.k * g.c * g.r * g.s, where, "dw");
  py::array db_arr;
  T* pdb = nullptr;
  if (!db.is_none()) {
    db_arr = db.cast<py::array>();
    pdb = mutable_data_of<T>(db_arr, g.k, where, "db");
  }
  py::gil_scoped_release release;
  conv2d_backward_weights<T>(g, pdy, px, pdw, pdb);
}

bool is_f32(const py::array& a) { return is_dtype<float>(a); }

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const py::array& x, const py::array& w, const py::object& b, py::array& y,
         const py::tuple& geom, bool relu) {
        const Geometry2d g = to_geometry(geom, "conv2d_forward");
        is_f32(x) ? forward<float>(x, w, b, y, g, relu) : forward<double>(x, w, b, y, g, relu);
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("geometry"),
      py::arg("relu") = false);
  m.def(
      "conv2d_backward_data",
      [](const py::array& dy, const py::array& w, py::array& dx, const py::tuple& geom) {
        const Geometry2d g = to_geometry(geom, "conv2d_backward");
        is_f32(dy) ? backward_data<float>(dy, w, dx, g) : backward_data<double>(dy, w, dx, g);
      },
      py::arg("dy"), py::arg("w"), py::arg("dx"), py::arg("geometry"));
  m.def(
      "conv2d_backward_weights",
      [](const py::array& dy, const py::array& x, py::array& dw, py::object db,
         const py::tuple& geom) {
        const Geometry2d g = to_geometry(geom, "conv2d_backward");
        is_f32(dy) ? backward_weights<float>(dy, x, dw, db, g)
                   : backward_weights<double>(dy, x, dw, db, g);
      },
      py::arg("dy"), py::arg("x"), py::arg("dw"), py::arg("db"), py::arg("geometry"));
}

}  // namespace fastcnn::bind
