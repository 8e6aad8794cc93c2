// The small-ops family on C-contiguous arrays: activations, softmax + cross-entropy, dropout,
// batch normalisation, in-place optimizer updates. Python (fastcnn._ops) validates arguments,
// promotes dtypes and allocates outputs; this file only re-checks what the kernels rely on
// (dtype, contiguity, matching shapes, writeability), releases the GIL and calls.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bindings/bindings.h"
#include "ops/ops.h"

namespace fastcnn::bind {

namespace {

Dims dims_of(const py::array& a) { return Dims(a.shape(), a.shape() + a.ndim()); }

int64_t size_of(const py::array& a) { return static_cast<int64_t>(a.size()); }

// (N, C, S) of a batchnorm operand: (N, D) -> S = 1, (N, C, H, W) -> S = H*W.
BnLayout bn_layout(const py::array& x, const char* where) {
  require(x.ndim() == 2 || x.ndim() == 4,
          std::string(where) + ": x must be (N, D) or (N, C, H, W), got shape " + shape_str(x));
  const int64_t s = x.ndim() == 4 ? x.shape(2) * x.shape(3) : 1;
  return BnLayout{x.shape(0), x.shape(1), s};
}

// Bytes of a bool mask shaped `dims` (numpy bool is one byte, 0 or 1).
const uint8_t* mask_of(const py::array& m, const Dims& dims, const char* where) {
  return reinterpret_cast<const uint8_t*>(data_of<bool>(m, dims, where, "mask"));
}

uint8_t* mutable_mask_of(py::array& m, const Dims& dims, const char* where) {
  return reinterpret_cast<uint8_t*>(mutable_data_of<bool>(m, dims, where, "mask"));
}

// Binds f(n, out, in) elementwise kernels with signature (x, y): y = f(x).
template <class Fn>
void def_unary(py::module_& m, const char* name, Fn fn, const char* doc) {
  m.def(
      name,
      [name, fn](const py::array& x, py::array& y) {
        dispatch_float(x, name, [&](auto t) {
          using T = decltype(t);
          const Dims d = dims_of(x);
          const T* px = data_of<T>(x, d, name, "x");
          T* py_ = mutable_data_of<T>(y, d, name, "y");
          py::gil_scoped_release release;
          fn(T{}, size_of(x), px, py_);
        });
      },
      py::arg("x"), py::arg("y"), doc);
}

// Binds (dy, other, dx) elementwise backward kernels.
template <class Fn>
void def_binary(py::module_& m, const char* name, const char* other, Fn fn, const char* doc) {
  m.def(
      name,
      [name, other, fn](const py::array& dy, const py::array& a, py::array& dx) {
        dispatch_float(dy, name, [&](auto t) {
          using T = decltype(t);
          const Dims d = dims_of(dy);
          const T* pdy = data_of<T>(dy, d, name, "dy");
          const T* pa = data_of<T>(a, d, name, other);
          T* pdx = mutable_data_of<T>(dx, d, name, "dx");
          py::gil_scoped_release release;
          fn(T{}, size_of(dy), pdy, pa, pdx);
        });
      },
      py::arg("dy"), py::arg(other), py::arg("dx"), doc);
}

// Labels index rows of p: each must be in [0, M) (the message is built only on failure).
void require_labels(const int64_t* lab, int64_t N, int64_t M, const char* where) {
  bool ok = true;
  for (int64_t r = 0; r < N; ++r) ok &= lab[r] >= 0 && lab[r] < M;
  require(ok, std::string(where) + ": label out of range");
}

// The optimizer kernels take __restrict pointers: their arrays must be pairwise disjoint.
void require_disjoint(const std::vector<const py::array*>& arrays, const char* where) {
  std::vector<std::pair<const char*, const char*>> ranges;
  for (const py::array* a : arrays) {
    const char* p = static_cast<const char*>(a->data());
    ranges.emplace_back(p, p + a->nbytes());
  }
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    for (std::size_t j = i + 1; j < ranges.size(); ++j) {
      const bool overlap = ranges[i].first < ranges[j].second && ranges[j].first < ranges[i].second;
      require(!overlap, std::string(where) + ": param, grad and state arrays must not overlap");
    }
  }
}

// Binds an in-place optimizer update name(param, grad, <S state arrays>, <K scalars>): param,
// grad and the states share one float dtype and shape and are pairwise disjoint; then
// call(n, param, grad, states, scalars) runs the kernel with the GIL released.
template <std::size_t S, std::size_t K, class Call>
void def_update(py::module_& m, const char* name, std::array<const char*, S> state_names, Call call,
                const char* doc) {
  m.def(
      name,
      [name, state_names, call](py::array& param, const py::array& grad, const py::args& rest) {
        require(rest.size() == S + K, std::string(name) + ": expected " + std::to_string(S) +
                                          " state arrays and " + std::to_string(K) +
                                          " numbers after param and grad");
        std::array<py::array, S> states;
        for (std::size_t i = 0; i < S; ++i) {
          if (!py::isinstance<py::array>(rest[i])) {
            throw py::type_error(std::string(name) + ": " + state_names[i] + " must be an array");
          }
          states[i] = rest[i].cast<py::array>();
        }
        std::array<double, K> scalars{};
        for (std::size_t i = 0; i < K; ++i) scalars[i] = rest[S + i].cast<double>();
        dispatch_float(param, name, [&](auto tag) {
          using T = decltype(tag);
          const Dims d = dims_of(param);
          T* pp = mutable_data_of<T>(param, d, name, "param");
          const T* pg = data_of<T>(grad, d, name, "grad");
          std::array<T*, S> ps{};
          std::vector<const py::array*> all = {&param, &grad};
          // states.size(), not S: with S == 0 (sgd) gcc's -Wtype-limits flags `i < 0`.
          for (std::size_t i = 0; i < states.size(); ++i) {
            ps[i] = mutable_data_of<T>(states[i], d, name, state_names[i]);
            all.push_back(&states[i]);
          }
          require_disjoint(all, name);
          py::gil_scoped_release release;
          call(size_of(param), pp, pg, ps, scalars);
        });
      },
      py::arg("param"), py::arg("grad"), doc);
}

}  // namespace

void bind_ops(py::module_& m) {
  def_unary(
      m, "relu_forward",
      [](auto t, int64_t n, const auto* x, auto* y) { relu_forward<decltype(t)>(n, x, y); },
      "y = max(x, 0) elementwise (NaN propagates), y preallocated like x.");
  def_unary(
      m, "sigmoid_forward",
      [](auto t, int64_t n, const auto* x, auto* y) { sigmoid_forward<decltype(t)>(n, x, y); },
      "y = 1 / (1 + exp(-x)) elementwise, y preallocated like x.");
  def_binary(
      m, "relu_backward", "x",
      [](auto t, int64_t n, const auto* dy, const auto* x, auto* dx) {
        relu_backward<decltype(t)>(n, dy, x, dx);
      },
      "dx = dy where x > 0 else 0; all three share dtype and shape.");
  def_binary(
      m, "sigmoid_backward", "y",
      [](auto t, int64_t n, const auto* dy, const auto* y, auto* dx) {
        sigmoid_backward<decltype(t)>(n, dy, y, dx);
      },
      "dx = dy * y * (1 - y); all three share dtype and shape.");

  m.def(
      "softmax_cross_entropy_forward",
      [](const py::array& x, const py::array& t, py::array& p) {
        constexpr const char* where = "softmax_cross_entropy_forward";
        require(x.ndim() == 2, std::string(where) + ": x must be (N, M), got " + shape_str(x));
        const int64_t N = x.shape(0), M = x.shape(1);
        require(N >= 1 && M >= 1, std::string(where) + ": x must be non-empty");
        double loss = 0.0;
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const T* px = data_of<T>(x, {N, M}, where, "x");
          T* pp = mutable_data_of<T>(p, {N, M}, where, "p");
          if (t.ndim() == 1) {
            const int64_t* lab = data_of<int64_t>(t, {N}, where, "t");
            require_labels(lab, N, M, where);
            py::gil_scoped_release release;
            loss = softmax_xent_forward_labels<T>(N, M, px, lab, pp);
          } else {
            const T* pt = data_of<T>(t, {N, M}, where, "t");
            py::gil_scoped_release release;
            loss = softmax_xent_forward_targets<T>(N, M, px, pt, pp);
          }
        });
        return loss;
      },
      py::arg("x"), py::arg("t"), py::arg("p"),
      "p = softmax(x) (preallocated (N, M)); returns the mean cross-entropy against int64\n"
      "labels t (N,) or float targets t (N, M) of x's dtype.");

  m.def(
      "softmax_cross_entropy_backward",
      [](const py::array& p, const py::array& t, double scale, py::array& dx) {
        constexpr const char* where = "softmax_cross_entropy_backward";
        require(p.ndim() == 2, std::string(where) + ": p must be (N, M), got " + shape_str(p));
        const int64_t N = p.shape(0), M = p.shape(1);
        dispatch_float(p, where, [&](auto tag) {
          using T = decltype(tag);
          const T* pp = data_of<T>(p, {N, M}, where, "p");
          T* pdx = mutable_data_of<T>(dx, {N, M}, where, "dx");
          if (t.ndim() == 1) {
            const int64_t* lab = data_of<int64_t>(t, {N}, where, "t");
            require_labels(lab, N, M, where);
            py::gil_scoped_release release;
            softmax_xent_backward_labels<T>(N, M, pp, lab, scale, pdx);
          } else {
            const T* pt = data_of<T>(t, {N, M}, where, "t");
            py::gil_scoped_release release;
            softmax_xent_backward_targets<T>(N, M, pp, pt, scale, pdx);
          }
        });
      },
      py::arg("p"), py::arg("t"), py::arg("scale"), py::arg("dx"),
      "dx = (p - onehot(t)) * scale for int64 labels t (N,), (p - t) * scale for targets.");

  m.def(
      "dropout_mask",
      [](py::array& keep, double ratio, uint64_t seed, uint64_t offset) {
        constexpr const char* where = "dropout_mask";
        require(ratio >= 0.0 && ratio <= 1.0, std::string(where) + ": ratio must be in [0, 1]");
        uint8_t* pk = mutable_mask_of(keep, dims_of(keep), where);
        py::gil_scoped_release release;
        dropout_mask(size_of(keep), ratio, seed, offset, pk);
      },
      py::arg("keep"), py::arg("ratio"), py::arg("seed"), py::arg("offset") = 0,
      "Fills the bool array keep with the reference's splitmix64 keep-mask, from stream index\n"
      "offset.");

  m.def(
      "dropout_forward",
      [](const py::array& x, double ratio, uint64_t seed, py::array& keep, py::array& y,
         uint64_t offset) {
        constexpr const char* where = "dropout_forward";
        require(ratio >= 0.0 && ratio <= 1.0, std::string(where) + ": ratio must be in [0, 1]");
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const Dims d = dims_of(x);
          const T* px = data_of<T>(x, d, where, "x");
          uint8_t* pk = mutable_mask_of(keep, d, where);
          T* py_ = mutable_data_of<T>(y, d, where, "y");
          py::gil_scoped_release release;
          dropout_forward<T>(size_of(x), px, ratio, seed, offset, pk, py_);
        });
      },
      py::arg("x"), py::arg("ratio"), py::arg("seed"), py::arg("keep"), py::arg("y"),
      py::arg("offset") = 0,
      "keep = dropout_mask(x.shape, ratio, seed, offset) and y = x * keep, in one pass.");

  m.def(
      "dropout_apply",
      [](const py::array& x, const py::array& keep, py::array& y) {
        constexpr const char* where = "dropout_apply";
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const Dims d = dims_of(x);
          const T* px = data_of<T>(x, d, where, "x");
          const uint8_t* pk = mask_of(keep, d, where);
          T* py_ = mutable_data_of<T>(y, d, where, "y");
          py::gil_scoped_release release;
          dropout_apply<T>(size_of(x), px, pk, py_);
        });
      },
      py::arg("x"), py::arg("keep"), py::arg("y"), "y = x * keep (keep a bool array like x).");

  m.def(
      "scale_forward",
      [](const py::array& x, double scale, py::array& y) {
        constexpr const char* where = "scale_forward";
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const Dims d = dims_of(x);
          const T* px = data_of<T>(x, d, where, "x");
          T* py_ = mutable_data_of<T>(y, d, where, "y");
          py::gil_scoped_release release;
          scale_forward<T>(size_of(x), px, scale, py_);
        });
      },
      py::arg("x"), py::arg("scale"), py::arg("y"), "y = x * scale, scale rounded to x's dtype.");

  m.def(
      "batchnorm_stats",
      [](const py::array& x, py::array& mean, py::array& var) {
        constexpr const char* where = "batchnorm_stats";
        const BnLayout L = bn_layout(x, where);
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const T* px = data_of<T>(x, dims_of(x), where, "x");
          T* pm = mutable_data_of<T>(mean, {L.c}, where, "mean");
          T* pv = mutable_data_of<T>(var, {L.c}, where, "var");
          py::gil_scoped_release release;
          batchnorm_stats<T>(L, px, pm, pv);
        });
      },
      py::arg("x"), py::arg("mean"), py::arg("var"),
      "Per-channel mean and biased variance of x (N, C) or (N, C, H, W) into (C,) arrays.");

  m.def(
      "batchnorm_apply",
      [](const py::array& x, const py::array& gamma, const py::array& beta, const py::array& mean,
         const py::array& inv_std, py::array& y) {
        constexpr const char* where = "batchnorm_apply";
        const BnLayout L = bn_layout(x, where);
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const Dims c = {L.c};
          const T* px = data_of<T>(x, dims_of(x), where, "x");
          const T* pg = data_of<T>(gamma, c, where, "gamma");
          const T* pb = data_of<T>(beta, c, where, "beta");
          const T* pm = data_of<T>(mean, c, where, "mean");
          const T* ps = data_of<T>(inv_std, c, where, "inv_std");
          T* py_ = mutable_data_of<T>(y, dims_of(x), where, "y");
          py::gil_scoped_release release;
          batchnorm_apply<T>(L, px, pg, pb, pm, ps, py_);
        });
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("mean"), py::arg("inv_std"),
      py::arg("y"), "y = gamma * ((x - mean) * inv_std) + beta per channel.");

  m.def(
      "batchnorm_backward",
      [](const py::array& dy, const py::array& x, const py::array& gamma, const py::array& mean,
         const py::array& inv_std, py::array& dx, py::array& dgamma, py::array& dbeta) {
        constexpr const char* where = "batchnorm_backward";
        const BnLayout L = bn_layout(x, where);
        dispatch_float(x, where, [&](auto tag) {
          using T = decltype(tag);
          const Dims c = {L.c}, d = dims_of(x);
          const T* pdy = data_of<T>(dy, d, where, "dy");
          const T* px = data_of<T>(x, d, where, "x");
          const T* pg = data_of<T>(gamma, c, where, "gamma");
          const T* pm = data_of<T>(mean, c, where, "mean");
          const T* ps = data_of<T>(inv_std, c, where, "inv_std");
          T* pdx = mutable_data_of<T>(dx, d, where, "dx");
          T* pdg = mutable_data_of<T>(dgamma, c, where, "dgamma");
          T* pdb = mutable_data_of<T>(dbeta, c, where, "dbeta");
          py::gil_scoped_release release;
          batchnorm_backward<T>(L, pdy, px, pg, pm, ps, pdx, pdg, pdb);
        });
      },
      py::arg("dy"), py::arg("x"), py::arg("gamma"), py::arg("mean"), py::arg("inv_std"),
      py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"),
      "Training-mode batchnorm gradients into preallocated dx, dgamma, dbeta.");

  // In-place optimizer updates: param, grad and the states share one dtype and shape.
  def_update<0, 1>(
      m, "sgd_update", {},
      [](int64_t n, auto* p, const auto* g, auto&, const auto& k) { sgd_update(n, p, g, k[0]); },
      "sgd_update(param, grad, lr): param -= lr * grad, in place.");
  def_update<1, 2>(
      m, "momentum_update", {"velocity"},
      [](int64_t n, auto* p, const auto* g, auto& s, const auto& k) {
        momentum_update(n, p, g, s[0], k[0], k[1]);
      },
      "momentum_update(param, grad, velocity, lr, momentum): velocity = momentum*velocity - "
      "lr*grad; param += velocity.");
  def_update<1, 2>(
      m, "nesterov_update", {"velocity"},
      [](int64_t n, auto* p, const auto* g, auto& s, const auto& k) {
        nesterov_update(n, p, g, s[0], k[0], k[1]);
      },
      "nesterov_update(param, grad, velocity, lr, momentum): Nesterov momentum (Deep Learning "
      "from Scratch form), in place.");
  def_update<1, 2>(
      m, "adagrad_update", {"h"},
      [](int64_t n, auto* p, const auto* g, auto& s, const auto& k) {
        adagrad_update(n, p, g, s[0], k[0], k[1]);
      },
      "adagrad_update(param, grad, h, lr, eps): h += grad*grad; param -= lr*grad/(sqrt(h) + "
      "eps), in place.");
  def_update<1, 3>(
      m, "rmsprop_update", {"h"},
      [](int64_t n, auto* p, const auto* g, auto& s, const auto& k) {
        rmsprop_update(n, p, g, s[0], k[0], k[1], k[2]);
      },
      "rmsprop_update(param, grad, h, lr, decay_rate, eps): h = decay*h + (1 - decay)*grad*grad; "
      "param -= lr*grad/(sqrt(h) + eps).");
  def_update<2, 4>(
      m, "adam_update", {"m", "v"},
      [](int64_t n, auto* p, const auto* g, auto& s, const auto& k) {
        adam_update(n, p, g, s[0], s[1], k[0], k[1], k[2], k[3]);
      },
      "adam_update(param, grad, m, v, lr_t, beta1, beta2, eps): Adam with the bias-corrected "
      "step lr_t computed by the caller, in place.");
}

}  // namespace fastcnn::bind
