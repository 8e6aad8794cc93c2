// conv2d_forward / conv2d_backward_data / conv2d_backward_weights on C-contiguous arrays whose
// shapes python/fastcnn/_conv.py has checked; the geometry arrives as a 13-tuple. Also the
// algorithm lists, the pin and the record of which ran (conv/algorithms.h).
#include "bindings/bindings.h"
#include "conv/algorithms.h"
#include "conv/conv.h"

namespace fastcnn::bind {

void bind_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const py::array& x, const py::array& w, const py::object& b, py::array& y,
         const GeometryTuple& geom, bool relu) {
        constexpr const char* where = "conv2d_forward";
        const Geometry2d g = to_geometry(geom, where);
        dispatch_float(x, where, [&](auto t) {
          using T = decltype(t);
          const T* px = data_of<T>(x, x_dims(g), where, "x");
          const T* pw = data_of<T>(w, w_dims(g), where, "w");
          const T* pb = b.is_none() ? nullptr : data_of<T>(b.cast<py::array>(), {g.k}, where, "b");
          T* py_ = mutable_data_of<T>(y, y_dims(g), where, "y");
          py::gil_scoped_release release;
          conv2d_forward<T>(g, px, pw, pb, py_, relu);
        });
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("geometry"),
      py::arg("relu") = false,
      "y (N,K,P,Q) = conv(x (N,C,H,W), w (K,C,R,S)) + b, optionally followed by ReLU.");
  m.def(
      "conv2d_backward_data",
      [](const py::array& dy, const py::array& w, py::array& dx, const GeometryTuple& geom) {
        constexpr const char* where = "conv2d_backward";
        const Geometry2d g = to_geometry(geom, where);
        dispatch_float(dy, where, [&](auto t) {
          using T = decltype(t);
          const T* pdy = data_of<T>(dy, y_dims(g), where, "dy");
          const T* pw = data_of<T>(w, w_dims(g), where, "w");
          T* pdx = mutable_data_of<T>(dx, x_dims(g), where, "dx");
          py::gil_scoped_release release;
          conv2d_backward_data<T>(g, pdy, pw, pdx);
        });
      },
      py::arg("dy"), py::arg("w"), py::arg("dx"), py::arg("geometry"),
      "dx (N,C,H,W) = the gradient of conv2d_forward with respect to x.");
  m.def(
      "conv2d_backward_weights",
      [](const py::array& dy, const py::array& x, py::array& dw, const py::object& db,
         const GeometryTuple& geom) {
        constexpr const char* where = "conv2d_backward";
        const Geometry2d g = to_geometry(geom, where);
        dispatch_float(dy, where, [&](auto t) {
          using T = decltype(t);
          const T* pdy = data_of<T>(dy, y_dims(g), where, "dy");
          const T* px = data_of<T>(x, x_dims(g), where, "x");
          T* pdw = mutable_data_of<T>(dw, w_dims(g), where, "dw");
          py::array db_arr = db.is_none() ? py::array() : db.cast<py::array>();
          T* pdb = db.is_none() ? nullptr : mutable_data_of<T>(db_arr, {g.k}, where, "db");
          py::gil_scoped_release release;
          conv2d_backward_weights<T>(g, pdy, px, pdw, pdb);
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("dw"), py::arg("db"), py::arg("geometry"),
      "dw (K,C,R,S) and db (K,) (db may be None): the weight gradients of conv2d_forward.");
  constexpr ConvPass kPasses[] = {ConvPass::forward, ConvPass::backward_data,
                                  ConvPass::backward_weights};
  m.def(
      "conv_algorithms",
      [=] {
        py::dict d;
        for (ConvPass pass : kPasses) {
          py::list names;
          for (const std::string& name : conv_algorithm_list(pass)) names.append(name);
          d[conv_pass_name(pass)] = names;
        }
        return d;
      },
      "Each pass's algorithms, in the order the default choice tries them.");
  m.def(
      "get_conv_algorithm",
      [] {
        const std::string name = get_conv_algorithm();
        return name.empty() ? py::object(py::none()) : py::object(py::str(name));
      },
      "The pinned algorithm, or None.");
  m.def(
      "set_conv_algorithm",
      [](const py::object& name) {
        set_conv_algorithm(name.is_none() ? std::string() : name.cast<std::string>());
      },
      py::arg("name"), "Pin an algorithm by name (None unpins); unknown names raise ValueError.");
  m.def(
      "last_conv_algorithms",
      [=] {
        py::dict d;
        for (ConvPass pass : kPasses) {
          const char* name = last_conv_algorithm(pass);
          d[conv_pass_name(pass)] = name == nullptr ? py::object(py::none()) : py::str(name);
        }
        return d;
      },
      "The algorithm each pass last ran on the calling thread (None before its first call).");
}

}  // namespace fastcnn::bind
