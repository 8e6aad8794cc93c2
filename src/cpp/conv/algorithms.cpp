// The convolution algorithms of each pass as one ordered list (see algorithms.h), the pin, the
// per-thread record of which ran, and the three entry points of conv.h. Everything that
// decides which algorithm runs is in this file or in the supports/preferred functions it
// names; the implementations (direct.cpp, winograd.cpp) only compute.
//
//   forward:           winograd_f4x4_3x3 > winograd_f2x2_3x3 > direct_columns > direct_pixels
//   backward_data:     winograd_f4x4_3x3 > winograd_f2x2_3x3 > direct_columns > direct_pixels
//                      (each the forward algorithm on the flipped problem) > col2im_gemm
//   backward_weights:  winograd_f2x2_3x3 > direct_pixels
#include "conv/algorithms.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/geometry.h"
#include "common/memory.h"
#include "common/tuning.h"
#include "conv/conv.h"
#include "conv/direct.h"
#include "conv/winograd.h"
#include "conv/winograd4.h"

namespace fastcnn {

namespace {

// The vocabulary: every algorithm's name, once; the lists below refer to these ids.
enum AlgorithmId : int { kWinograd4, kWinograd, kColumns, kPixels, kCol2im, kAlgorithms };
constexpr const char* kNames[kAlgorithms] = {"winograd_f4x4_3x3", "winograd_f2x2_3x3",
                                             "direct_columns", "direct_pixels", "col2im_gemm"};
constexpr const char* kPassNames[kConvPasses] = {"forward", "backward_data", "backward_weights"};

std::atomic<int> g_pinned{-1};                 // an AlgorithmId, or -1
thread_local const char* t_last[kConvPasses];  // per thread: what each pass last ran

// One call of a pass: its geometry and operands (see conv.h for the layouts).
template <class T>
struct ForwardCall {
  const Geometry2d& g;
  const T* x;
  const T* w;
  const T* b;
  T* y;
  bool relu;
  mutable int w_finite = -1;  // all_finite(w), computed on first use
  bool finite_weights() const {
    if (w_finite < 0) w_finite = all_finite(w, g.k * g.c * g.r * g.s) ? 1 : 0;
    return w_finite == 1;
  }
};
template <class T>
struct BackwardDataCall {
  const Geometry2d& g;
  const T* dy;
  const T* w;
  T* dx;
  mutable int w_finite = -1;
  bool finite_weights() const {
    if (w_finite < 0) w_finite = all_finite(w, g.k * g.c * g.r * g.s) ? 1 : 0;
    return w_finite == 1;
  }
};
template <class T>
struct WeightsCall {
  const Geometry2d& g;
  const T* dy;
  const T* x;
  T* dw;
  T* db;
};

template <class Call>
struct Algorithm {
  AlgorithmId id;
  bool (*supports)(const Call&);   // it can compute this call: a pin runs it wherever this holds
  bool (*preferred)(const Call&);  // the default order takes it here (if it supports the call)
  bool (*run)(const Call&);        // false: it declined mid-run (only where `declines`)
  bool declines;                   // it may decline: the next supported, preferred entry runs
};

template <class Call>
bool always(const Call&) {
  return true;
}

// ---- forward -------------------------------------------------------------------------------

template <class T>
bool winograd_forward_supports(const ForwardCall<T>& c) {
  // Finite weights only: U = G g G^T would turn inf - inf into NaN.
  return winograd_supports(c.g) && c.finite_weights();
}
template <class T>
bool winograd_forward_prefers(const ForwardCall<T>& c) {
  return winograd_forward_preferred(c.g);
}
template <class T>
bool winograd_forward_run(const ForwardCall<T>& c) {
  return conv2d_forward_winograd(c.g, c.x, c.w, c.b, c.y, c.relu);
}
template <class T>
bool winograd4_forward_supports(const ForwardCall<T>& c) {
  return winograd4_supports(c.g) && c.finite_weights();
}
template <class T>
bool winograd4_forward_prefers(const ForwardCall<T>& c) {
  return winograd4_forward_preferred(c.g);
}
template <class T>
bool winograd4_forward_run(const ForwardCall<T>& c) {
  return conv2d_forward_winograd4(c.g, c.x, c.w, c.b, c.y, c.relu);
}
template <class T>
bool columns_supports(const ForwardCall<T>& c) {
  return c.g.sh == 1 && c.g.sw == 1;
}
template <class T>
bool columns_prefers(const ForwardCall<T>& c) {
  return direct_columns_preferred<T>(c.g);
}
template <class T>
bool columns_run(const ForwardCall<T>& c) {
  conv2d_forward_columns(c.g, c.x, c.w, c.b, c.y, c.relu);
  return true;
}
template <class T>
bool pixels_run(const ForwardCall<T>& c) {
  conv2d_forward_pixels(c.g, c.x, c.w, c.b, c.y, c.relu);
  return true;
}

template <class T>
constexpr std::array<Algorithm<ForwardCall<T>>, 4> kForward{{
    {kWinograd4, &winograd4_forward_supports<T>, &winograd4_forward_prefers<T>,
     &winograd4_forward_run<T>, true},
    {kWinograd, &winograd_forward_supports<T>, &winograd_forward_prefers<T>,
     &winograd_forward_run<T>, true},
    {kColumns, &columns_supports<T>, &columns_prefers<T>, &columns_run<T>, false},
    {kPixels, &always<ForwardCall<T>>, &always<ForwardCall<T>>, &pixels_run<T>, false},
}};

// ---- backward-data -------------------------------------------------------------------------
// With unit strides and padding under the window, dx is the forward convolution of dy,
// zero-padded by (R-1-ph, S-1-pw), with the kernel flipped in space and its in/out channels
// swapped (w'[c,k,r,s] = w[k,c,R-1-r,S-1-s]): each forward algorithm runs on that flipped
// problem, with no col2im scatter. Finite weights only: the forward form multiplies dy's zero
// padding by every weight, and 0 * inf would put NaN where the scatter form has none. The
// default order wants enough input channels (they become the forward's output channels).

inline Geometry2d flipped_geometry(const Geometry2d& g) {
  return {g.n, g.k, g.p, g.q, g.c, g.r, g.s, 1, 1, g.r - 1 - g.ph, g.s - 1 - g.pw, g.h, g.w};
}

template <class T>
bool flip_supports(const BackwardDataCall<T>& c) {
  const Geometry2d& g = c.g;
  return g.sh == 1 && g.sw == 1 && g.ph < g.r && g.pw < g.s && c.finite_weights();
}

// The forward entry I of the flipped problem. Its supports/preferred read only the geometry
// and the weights' finiteness (the flipped weights are finite where w is).
template <class T, std::size_t I>
bool flipped_supports(const BackwardDataCall<T>& c) {
  if (!flip_supports(c)) return false;
  const Geometry2d gt = flipped_geometry(c.g);
  return kForward<T>[I].supports(ForwardCall<T>{gt, c.dy, c.w, nullptr, c.dx, false, 1});
}
template <class T, std::size_t I>
bool flipped_prefers(const BackwardDataCall<T>& c) {
  if (c.g.c < tuning::kFlippedMinInputChannels) return false;
  const Geometry2d gt = flipped_geometry(c.g);
  return kForward<T>[I].preferred(ForwardCall<T>{gt, c.dy, c.w, nullptr, c.dx, false, 1});
}
template <class T, std::size_t I>
bool flipped_run(const BackwardDataCall<T>& c) {
  const Geometry2d& g = c.g;
  const int64_t rs = g.r * g.s;
  AlignedBuffer<T> wt(checked_mul(g.k * g.c, rs, "conv2d_backward_data weights"));
  for (int64_t ch = 0; ch < g.c; ++ch)
    for (int64_t k = 0; k < g.k; ++k)
      for (int64_t t = 0; t < rs; ++t)
        wt.data()[(ch * g.k + k) * rs + t] = c.w[(k * g.c + ch) * rs + rs - 1 - t];
  const Geometry2d gt = flipped_geometry(g);
  return kForward<T>[I].run(ForwardCall<T>{gt, c.dy, wt.data(), nullptr, c.dx, false, 1});
}
template <class T>
bool col2im_run(const BackwardDataCall<T>& c) {
  conv2d_backward_data_col2im(c.g, c.dy, c.w, c.dx);
  return true;
}

template <class T>
constexpr std::array<Algorithm<BackwardDataCall<T>>, 5> kBackwardData{{
    {kWinograd4, &flipped_supports<T, 0>, &flipped_prefers<T, 0>, &flipped_run<T, 0>, true},
    {kWinograd, &flipped_supports<T, 1>, &flipped_prefers<T, 1>, &flipped_run<T, 1>, true},
    {kColumns, &flipped_supports<T, 2>, &flipped_prefers<T, 2>, &flipped_run<T, 2>, false},
    {kPixels, &flipped_supports<T, 3>, &flipped_prefers<T, 3>, &flipped_run<T, 3>, false},
    {kCol2im, &always<BackwardDataCall<T>>, &always<BackwardDataCall<T>>, &col2im_run<T>, false},
}};

// ---- backward-weights ----------------------------------------------------------------------

template <class T>
bool winograd_weights_supports(const WeightsCall<T>& c) {
  return winograd_supports(c.g);
}
template <class T>
bool winograd_weights_prefers(const WeightsCall<T>& c) {
  return winograd_weights_preferred(c.g);
}
template <class T>
bool winograd_weights_run(const WeightsCall<T>& c) {
  return conv2d_backward_weights_winograd(c.g, c.dy, c.x, c.dw, c.db);
}
template <class T>
bool weights_direct_run(const WeightsCall<T>& c) {
  conv2d_backward_weights_direct(c.g, c.dy, c.x, c.dw, c.db);
  return true;
}

template <class T>
constexpr std::array<Algorithm<WeightsCall<T>>, 2> kBackwardWeights{{
    {kWinograd, &winograd_weights_supports<T>, &winograd_weights_prefers<T>,
     &winograd_weights_run<T>, true},
    {kPixels, &always<WeightsCall<T>>, &always<WeightsCall<T>>, &weights_direct_run<T>, false},
}};

// Every list ends with an entry that always applies and never declines.
template <class Call, std::size_t N>
constexpr bool ends_with_a_fallback(const std::array<Algorithm<Call>, N>& list) {
  return N > 0 && list[N - 1].supports == &always<Call> && list[N - 1].preferred == &always<Call> &&
         !list[N - 1].declines;
}
static_assert(ends_with_a_fallback(kForward<float>) && ends_with_a_fallback(kForward<double>));
static_assert(ends_with_a_fallback(kBackwardData<float>) &&
              ends_with_a_fallback(kBackwardData<double>));
static_assert(ends_with_a_fallback(kBackwardWeights<float>) &&
              ends_with_a_fallback(kBackwardWeights<double>));

// The pinned entry if it supports the call, else (or if it declines) the first entry that
// supports the call and is preferred, skipping any that declines; records what ran.
template <class Call, std::size_t N>
void run_first_applicable(ConvPass pass, const std::array<Algorithm<Call>, N>& list,
                          const Call& call) {
  const int pinned = g_pinned.load(std::memory_order_relaxed);
  std::size_t declined = N;
  for (std::size_t i = 0; i < N; ++i) {
    if (list[i].id != pinned) continue;
    if (list[i].supports(call)) {
      if (list[i].run(call)) {
        t_last[static_cast<int>(pass)] = kNames[list[i].id];
        return;
      }
      declined = i;
    }
    break;
  }
  for (std::size_t i = 0; i < N; ++i) {
    const Algorithm<Call>& a = list[i];
    if (i == declined || !a.supports(call) || !a.preferred(call)) continue;
    if (a.run(call)) {
      t_last[static_cast<int>(pass)] = kNames[a.id];
      return;
    }
  }
}

template <class Call, std::size_t N>
std::vector<std::string> names_of(const std::array<Algorithm<Call>, N>& list) {
  std::vector<std::string> out;
  for (const Algorithm<Call>& a : list) out.emplace_back(kNames[a.id]);
  return out;
}

}  // namespace

const char* conv_pass_name(ConvPass pass) { return kPassNames[static_cast<int>(pass)]; }

std::vector<std::string> conv_algorithm_list(ConvPass pass) {
  switch (pass) {
    case ConvPass::forward:
      return names_of(kForward<float>);
    case ConvPass::backward_data:
      return names_of(kBackwardData<float>);
    case ConvPass::backward_weights:
      return names_of(kBackwardWeights<float>);
  }
  return {};
}

std::string get_conv_algorithm() {
  const int pinned = g_pinned.load(std::memory_order_relaxed);
  return pinned < 0 ? std::string() : std::string(kNames[pinned]);
}

void set_conv_algorithm(const std::string& name) {
  if (name.empty()) {
    g_pinned.store(-1, std::memory_order_relaxed);
    return;
  }
  std::string known;
  for (int id = 0; id < kAlgorithms; ++id) {
    if (name == kNames[id]) {
      g_pinned.store(id, std::memory_order_relaxed);
      return;
    }
    known += (id ? ", " : "") + std::string(kNames[id]);
  }
  throw std::invalid_argument("unknown convolution algorithm '" + name + "' (known: " + known +
                              ")");
}

const char* last_conv_algorithm(ConvPass pass) { return t_last[static_cast<int>(pass)]; }

template <class T>
void conv2d_forward(const Geometry2d& g, const T* x, const T* w, const T* b, T* y, bool relu) {
  g.validate("conv2d_forward");
  if (g.n == 0) return;  // an empty batch: no weights packed, no scratch sized by C, K
  run_first_applicable(ConvPass::forward, kForward<T>, ForwardCall<T>{g, x, w, b, y, relu});
}

template <class T>
void conv2d_backward_data(const Geometry2d& g, const T* dy, const T* w, T* dx) {
  g.validate("conv2d_backward_data");
  if (g.n == 0) return;
  run_first_applicable(ConvPass::backward_data, kBackwardData<T>,
                       BackwardDataCall<T>{g, dy, w, dx});
}

template <class T>
void conv2d_backward_weights(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db) {
  g.validate("conv2d_backward_weights");
  if (g.n == 0) {  // sums over no images
    std::fill(dw, dw + g.k * g.c * g.r * g.s, T(0));
    if (db != nullptr) std::fill(db, db + g.k, T(0));
    return;
  }
  run_first_applicable(ConvPass::backward_weights, kBackwardWeights<T>,
                       WeightsCall<T>{g, dy, x, dw, db});
}

#define FASTCNN_INSTANTIATE_CONV(T)                                                           \
  template void conv2d_forward<T>(const Geometry2d&, const T*, const T*, const T*, T*, bool); \
  template void conv2d_backward_data<T>(const Geometry2d&, const T*, const T*, T*);           \
  template void conv2d_backward_weights<T>(const Geometry2d&, const T*, const T*, T*, T*);
FASTCNN_INSTANTIATE_CONV(float)
FASTCNN_INSTANTIATE_CONV(double)

}  // namespace fastcnn
