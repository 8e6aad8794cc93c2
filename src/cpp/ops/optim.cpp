// Fused in-place optimizer updates (SGD, momentum, Nesterov, AdaGrad, RMSprop, Adam), float
// and double: one pass over memory where numpy makes several and allocates temporaries.
// Leaves out weight decay and gradient clipping (the reference has neither).
//
// Layout contract: param, grad and the state arrays are n contiguous elements of one dtype T,
// and no two of them overlap. Each step is the reference's numpy expression evaluated in T in
// the same order, with every Python scalar rounded to T as numpy does for a weak Python float,
// so results match the reference bit for bit.
// The loops live in functions with __restrict parameters: with three or four streams gcc gives
// up on run-time alias checks and would not vectorise. The binding checks the arrays are
// disjoint; fastcnn._ops sends overlapping arrays down the reference's path.
// This file is compiled with -fno-math-errno so std::sqrt vectorises (errno is never read;
// the results are the same correctly rounded IEEE square roots).
#include <cmath>
#include <cstdint>

#include "ops/elementwise.h"
#include "ops/ops.h"

namespace fastcnn {

namespace {

template <class T>
void sgd_range(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T a) {
  for (int64_t i = b; i < e; ++i) param[i] = param[i] - a * grad[i];  // param -= lr * grad
}

template <class T>
void momentum_range(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad,
                    T* __restrict velocity, T a, T mu) {
  for (int64_t i = b; i < e; ++i) {
    const T v = mu * velocity[i] - a * grad[i];  // velocity = momentum*velocity - lr*grad
    velocity[i] = v;
    param[i] = param[i] + v;  // param += velocity
  }
}

template <class T>
void nesterov_range(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad,
                    T* __restrict velocity, T a, T mu, T mu2, T c) {
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i];
    const T v = mu * velocity[i] - a * g;
    velocity[i] = v;
    param[i] = param[i] + (mu2 * v - c * g);
  }
}

// AdaGrad and RMSprop differ only in how h is updated: h' = d*h + d1*g*g with d = 1, d1
// unused for AdaGrad (h + g*g, the reference's h += grad*grad).
template <class T, bool kAdagrad>
void adaptive_range(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad,
                    T* __restrict h, T a, T d, T d1, T eps) {
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i];
    const T hh = kAdagrad ? h[i] + g * g : d * h[i] + d1 * g * g;  // ((1 - d)*grad)*grad
    h[i] = hh;
    param[i] = param[i] - a * g / (std::sqrt(hh) + eps);  // param -= lr*grad/(sqrt(h) + eps)
  }
}

template <class T>
void adam_range(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad,
                T* __restrict m, T* __restrict v, T a, T b1, T b2, T eps) {
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i];
    const T mm = m[i] + b1 * (g - m[i]);      // m += (1 - beta1)*(grad - m)
    const T vv = v[i] + b2 * (g * g - v[i]);  // v += (1 - beta2)*(grad*grad - v)
    m[i] = mm;
    v[i] = vv;
    param[i] = param[i] - a * mm / (std::sqrt(vv) + eps);  // param -= lr_t*m/(sqrt(v) + eps)
  }
}

}  // namespace

using ops_detail::element_work;
using ops_detail::parallel_elements;

template <class T>
void sgd_update(int64_t n, T* param, const T* grad, double lr) {
  const T a = static_cast<T>(lr);
  parallel_elements(n, element_work(3, sizeof(T)),
                    [&](int64_t b, int64_t e) { sgd_range(b, e, param, grad, a); });
}

template <class T>
void momentum_update(int64_t n, T* param, const T* grad, T* velocity, double lr, double momentum) {
  const T a = static_cast<T>(lr), mu = static_cast<T>(momentum);
  parallel_elements(n, element_work(5, sizeof(T)), [&](int64_t b, int64_t e) {
    momentum_range(b, e, param, grad, velocity, a, mu);
  });
}

template <class T>
void nesterov_update(int64_t n, T* param, const T* grad, T* velocity, double lr, double momentum) {
  const T a = static_cast<T>(lr), mu = static_cast<T>(momentum);
  // momentum*momentum and (1 + momentum)*lr are Python-float products in the reference.
  const T mu2 = static_cast<T>(momentum * momentum);
  const T c = static_cast<T>((1.0 + momentum) * lr);
  parallel_elements(n, element_work(5, sizeof(T)), [&](int64_t b, int64_t e) {
    nesterov_range(b, e, param, grad, velocity, a, mu, mu2, c);
  });
}

template <class T>
void adagrad_update(int64_t n, T* param, const T* grad, T* h, double lr, double eps) {
  const T a = static_cast<T>(lr), ep = static_cast<T>(eps);
  parallel_elements(n, element_work(5, sizeof(T), 10), [&](int64_t b, int64_t e) {
    adaptive_range<T, true>(b, e, param, grad, h, a, T(1), T(0), ep);
  });
}

template <class T>
void rmsprop_update(int64_t n, T* param, const T* grad, T* h, double lr, double decay_rate,
                    double eps) {
  const T a = static_cast<T>(lr), ep = static_cast<T>(eps);
  const T d = static_cast<T>(decay_rate), d1 = static_cast<T>(1.0 - decay_rate);
  parallel_elements(n, element_work(5, sizeof(T), 10), [&](int64_t b, int64_t e) {
    adaptive_range<T, false>(b, e, param, grad, h, a, d, d1, ep);
  });
}

template <class T>
void adam_update(int64_t n, T* param, const T* grad, T* m, T* v, double lr_t, double beta1,
                 double beta2, double eps) {
  const T a = static_cast<T>(lr_t), ep = static_cast<T>(eps);
  const T b1 = static_cast<T>(1.0 - beta1), b2 = static_cast<T>(1.0 - beta2);
  parallel_elements(n, element_work(7, sizeof(T), 15), [&](int64_t b, int64_t e) {
    adam_range(b, e, param, grad, m, v, a, b1, b2, ep);
  });
}

#define FASTCNN_INSTANTIATE_OPTIM(T)                                                  \
  template void sgd_update<T>(int64_t, T*, const T*, double);                         \
  template void momentum_update<T>(int64_t, T*, const T*, T*, double, double);        \
  template void nesterov_update<T>(int64_t, T*, const T*, T*, double, double);        \
  template void adagrad_update<T>(int64_t, T*, const T*, T*, double, double);         \
  template void rmsprop_update<T>(int64_t, T*, const T*, T*, double, double, double); \
  template void adam_update<T>(int64_t, T*, const T*, T*, T*, double, double, double, double);
FASTCNN_INSTANTIATE_OPTIM(float)
FASTCNN_INSTANTIATE_OPTIM(double)
#undef FASTCNN_INSTANTIATE_OPTIM

}  // namespace fastcnn
