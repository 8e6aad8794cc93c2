// Softmax followed by cross-entropy over the rows of (N, M) logits, with integer labels or
// float targets, and its gradient (float and double). Leaves out a standalone softmax: the
// reference's is cheap and fastcnn.functional keeps it.
//
// Layout contract: x, p, t, dx are (N, M) row-major; labels is (N,) int64 in [0, M).
// Rows are independent work items; each row's loss goes to its own slot and the slots are
// summed in row order by one thread, so the loss has the same bits for any thread count.
// Formulas follow the reference: z = x - max(x), total = sum(exp(z)), p = exp(z) / total,
// log_softmax = z - log(total), all in T except that total and the loss accumulate in double.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ops/elementwise.h"
#include "ops/ops.h"

namespace fastcnn {

namespace {

// Writes p (one row) and returns log(total) in T; z = x - mx is recomputed by callers.
template <class T>
T softmax_row(int64_t M, const T* x, T* p, T& mx) {
  // numpy's max: NaN if any element is NaN.
  T best = x[0];
  bool nan = false;
  for (int64_t m = 0; m < M; ++m) {
    const T v = x[m];
    nan |= v != v;
    best = v > best ? v : best;
  }
  mx = nan ? std::numeric_limits<T>::quiet_NaN() : best;
  double total = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    const T e = std::exp(x[m] - mx);
    p[m] = e;
    total += static_cast<double>(e);
  }
  const T tot = static_cast<T>(total);
  for (int64_t m = 0; m < M; ++m) p[m] = p[m] / tot;
  return std::log(tot);
}

// Runs row_loss(n) for every row on the thread pool and returns mean(-loss) rounded to T.
template <class T, class RowLoss>
double mean_loss(int64_t N, int64_t M, RowLoss&& row_loss) {
  std::vector<double> loss(static_cast<size_t>(N));
  // Per element: exp and a division, two reads and a write.
  const double elements = static_cast<double>(checked_mul(N, M, "softmax_xent"));
  const int parts = threads_for(N, Work{30 * elements, 3 * sizeof(T) * elements});
  parallel_run(parts, [&](int part, int n_parts) {
    int64_t r0, r1;
    partition(N, part, n_parts, r0, r1);
    for (int64_t r = r0; r < r1; ++r) loss[static_cast<size_t>(r)] = row_loss(r);
  });
  double sum = 0.0;
  for (int64_t r = 0; r < N; ++r) sum += loss[static_cast<size_t>(r)];
  return static_cast<double>(static_cast<T>(-sum) / static_cast<T>(N));
}

}  // namespace

template <class T>
double softmax_xent_forward_labels(int64_t N, int64_t M, const T* x, const int64_t* labels, T* p) {
  return mean_loss<T>(N, M, [&](int64_t r) {
    const T* xr = x + r * M;
    T mx;
    const T log_total = softmax_row(M, xr, p + r * M, mx);
    return static_cast<double>((xr[labels[r]] - mx) - log_total);
  });
}

template <class T>
double softmax_xent_forward_targets(int64_t N, int64_t M, const T* x, const T* t, T* p) {
  return mean_loss<T>(N, M, [&](int64_t r) {
    const T* xr = x + r * M;
    const T* tr = t + r * M;
    T mx;
    const T log_total = softmax_row(M, xr, p + r * M, mx);
    double s = 0.0;
    for (int64_t m = 0; m < M; ++m) s += static_cast<double>(tr[m] * ((xr[m] - mx) - log_total));
    return s;
  });
}

template <class T>
void softmax_xent_backward_labels(int64_t N, int64_t M, const T* p, const int64_t* labels,
                                  double scale, T* dx) {
  // dx = p * s everywhere (p - 0 == p exactly, signed zeros included), then the N label
  // entries get (p - 1) * s: a flat vectorised pass instead of N short rows.
  const T s = static_cast<T>(scale);
  ops_detail::parallel_elements(checked_mul(N, M, "softmax_xent"),
                                ops_detail::element_work(2, sizeof(T)), [&](int64_t b, int64_t e) {
                                  for (int64_t i = b; i < e; ++i) dx[i] = p[i] * s;
                                });
  for (int64_t r = 0; r < N; ++r) {
    const int64_t i = r * M + labels[r];
    dx[i] = (p[i] - T(1)) * s;
  }
}

template <class T>
void softmax_xent_backward_targets(int64_t N, int64_t M, const T* p, const T* t, double scale,
                                   T* dx) {
  const T s = static_cast<T>(scale);
  ops_detail::parallel_elements(checked_mul(N, M, "softmax_xent"),
                                ops_detail::element_work(3, sizeof(T)), [&](int64_t b, int64_t e) {
                                  for (int64_t i = b; i < e; ++i) dx[i] = (p[i] - t[i]) * s;
                                });
}

#define FASTCNN_INSTANTIATE_SOFTMAX_XENT(T)                                                       \
  template double softmax_xent_forward_labels<T>(int64_t, int64_t, const T*, const int64_t*, T*); \
  template double softmax_xent_forward_targets<T>(int64_t, int64_t, const T*, const T*, T*);      \
  template void softmax_xent_backward_labels<T>(int64_t, int64_t, const T*, const int64_t*,       \
                                                double, T*);                                      \
  template void softmax_xent_backward_targets<T>(int64_t, int64_t, const T*, const T*, double, T*);
FASTCNN_INSTANTIATE_SOFTMAX_XENT(float)
FASTCNN_INSTANTIATE_SOFTMAX_XENT(double)
#undef FASTCNN_INSTANTIATE_SOFTMAX_XENT

}  // namespace fastcnn
