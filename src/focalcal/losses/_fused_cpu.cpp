// Fused CPU kernels of the focal-loss family (focalcal.losses._fused builds and loads this file).
//
// Logits are viewed as (N, C, S): S = 1 for (N, C) input, S = d1*d2*... for (N, C, d1, ...).
// An item is one (n, s); targets equal to ignore_index count as class 0 with weight 0. Per item,
// with m = max_c x_c and log p_c = (x_c - m) - log(sum_c exp(x_c - m)) (torch.log_softmax's
// formula on CPU), `stats` computes
//   log p_y,  log p_j = max{log p_c : log p_c < log p_y} (-inf if none),  its class j,  m, log(sum)
// in two read passes and without writing any (N, C, S) tensor: the max pass also finds the
// largest logit below x_y, whose log-probability is log p_j unless rounding ties it with log p_y
// (then one exact pass). Among classes whose log p equals log p_j, j is the one with the largest
// logit (the true largest probability), the lowest index among equal logits. `loss` adds the
// per-item algebra of -w b^gamma log p_y (b = 1 - p_y + p_j, or 1 + p_y for inverse focal;
// gamma from a thresholds table on p_y or on the margin p_y - p_j, possibly signed as in
// AdaFocal), the reduction and the
// derivatives d_y = dl/dlog p_y, d_j = dl/dlog p_j, vectorised over items. `backward` writes
//   dL/dx_c = g_y (e_y - p)_c + g_j (e_j - p)_c,   g = d * grad_out,  p_c = exp(log p_c)
// in one pass (cross-entropy's backward needs a zero fill, a scatter and log_softmax's backward).
// Rows are vectorised along C when S = 1 and along S otherwise; work is split with
// at::parallel_for, so torch.set_num_threads applies. Sums are serial, hence deterministic.
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace {

using at::vec::Vectorized;

constexpr int64_t kGrain = 32768;  // elements per parallel task, as at::internal::GRAIN_SIZE
// float class indices are exact below 2^24 (float32); larger C searches the index by scanning
constexpr int64_t kMaxVectorIndex = int64_t(1) << 24;

template <typename T>
struct Stats {
  T* log_p_y;
  T* log_p_j;        // null without a runner-up
  int64_t* index_j;  // null unless the index is needed
  T* shift;
  T* log_sum;
};

struct Targets {
  const int64_t* data;
  int64_t ignore_index;
  int64_t safe(int64_t item) const {
    const int64_t y = data[item];
    return y == ignore_index ? 0 : y;
  }
};

// The runner-up by definition, for one item (classes `stride` apart): the largest
// log p_c = (x_c - m) - ls below log p_y, and among the classes holding it the one with the
// largest logit (the lowest index among equal logits); (-inf, 0) if there is none.
template <typename T>
std::pair<T, int64_t> runner_up_exact(const T* x, int64_t C, int64_t stride, T m, T ls, T lpy) {
  T best = -std::numeric_limits<T>::infinity(), best_x = best;
  int64_t index = 0;
  for (int64_t c = 0; c < C; ++c) {
    const T xc = x[c * stride];
    const T v = (xc - m) - ls;
    if (v < lpy && (v > best || (v == best && xc > best_x))) {
      best = v;
      best_x = xc;
      index = c;
    }
  }
  return {best, index};
}

// The runner-up from the logit x2 = max{x_c : x_c < x_y} found in the max pass (index2 the
// lowest c holding it): log p_c is non-decreasing in x_c, so every class with log p_c < log p_y
// has x_c <= x2, and when x2's own log p is below log p_y (unless rounding ties it with p_y) it
// is the maximum; ties (and an unknown index2, -1) are resolved by runner_up_exact, so the
// index returned is always in [0, C) (backward writes there).
template <typename T>
std::pair<T, int64_t> runner_up_from_logit(const T* x, int64_t C, int64_t stride, T m, T ls,
                                           T lpy, T x2, int64_t index2) {
  if (!(x2 > -std::numeric_limits<T>::infinity())) return {x2, 0};
  const T lpj = (x2 - m) - ls;
  if (lpj < lpy && index2 >= 0 && index2 < C) return {lpj, index2};
  return runner_up_exact(x, C, stride, m, ls, lpy);
}

// Rows contiguous along C (S = 1). The max pass also finds x2 = max{x_c : x_c < x_y} and the
// lowest index holding it (per lane, strict '>' keeps the first; lanes merged without branches).
template <typename T, bool kRunnerUp, bool kIndex>
void stats_rows(const T* X, Targets Y, int64_t N, int64_t C, Stats<T> out) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const bool vector_index = C < kMaxVectorIndex;  // float lane indices are exact
  at::parallel_for(0, N, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
    const V lanes = V::arange(T(0), T(1));
    for (int64_t i = begin; i < end; ++i) {
      const T* x = X + i * C;
      const T xy = x[Y.safe(i)];
      const V vxy(xy);
      V vmax(neg_inf), best(neg_inf), index(T(0)), vc = lanes;
      for (int64_t c = 0; c < C; c += W) {
        const int64_t count = std::min<int64_t>(W, C - c);
        V v = V::loadu(x + c, count);
        if (count < W) v = V::blendv(V(neg_inf), v, lanes < V(T(count)));
        vmax = at::vec::maximum(vmax, v);
        if (kRunnerUp) {
          const V better = (v < vxy) & (v > best);
          best = V::blendv(best, v, better);
          if (kIndex) {
            index = V::blendv(index, vc, better);
            vc = vc + V(T(W));
          }
        }
      }
      const auto vec_max = [](V a, V b) { return at::vec::maximum(a, b); };
      const T m = at::vec::vec_reduce_all<T>(vec_max, vmax);
      const T sum = at::vec::map_reduce_all<T>([m](V v) { return (v - V(m)).exp(); },
                                               [](V a, V b) { return a + b; }, x, C);
      const T ls = std::log(sum);
      const T lpy = (xy - m) - ls;
      out.log_p_y[i] = lpy;
      out.shift[i] = m;
      out.log_sum[i] = ls;
      if (!kRunnerUp) continue;
      const T x2 = at::vec::vec_reduce_all<T>(vec_max, best);
      int64_t index2 = -1;  // unknown: runner_up_exact finds it
      if (kIndex && vector_index) {
        const V at_top = V::blendv(V(T(C)), index, best == V(x2));
        index2 = static_cast<int64_t>(at::vec::vec_reduce_all<T>(
            [](V a, V b) { return at::vec::minimum(a, b); }, at_top));
      } else if (!kIndex) {
        index2 = 0;
      }
      const auto [lpj, j] = runner_up_from_logit(x, C, 1, m, ls, lpy, x2, index2);
      out.log_p_j[i] = lpj;
      if (kIndex) out.index_j[i] = j;
    }
  });
}

// (N, C, S) with S > 1: the lanes of a vector are W neighbouring positions s (W items).
template <typename T, bool kRunnerUp, bool kIndex>
void stats_strided(const T* X, Targets Y, int64_t N, int64_t C, int64_t S, Stats<T> out) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int64_t chunks = (S + W - 1) / W;
  const bool vector_index = C < kMaxVectorIndex;
  at::parallel_for(0, N * chunks, std::max<int64_t>(1, kGrain / (C * W)), [&](int64_t begin,
                                                                             int64_t end) {
    T m_l[W], sum_l[W], xy_l[W], x2_l[W], index_l[W];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / chunks;
      const int64_t s0 = (task % chunks) * W;
      const int64_t count = std::min<int64_t>(W, S - s0);
      const T* x = X + n * C * S + s0;
      const int64_t item0 = n * S + s0;
      // lanes past `count` load zeros; they are computed and never stored
      for (int64_t l = 0; l < W; ++l) xy_l[l] = l < count ? x[Y.safe(item0 + l) * S + l] : T(0);
      const V vxy = V::loadu(xy_l);
      V vm(neg_inf), best(neg_inf), index(T(0));
      for (int64_t c = 0; c < C; ++c) {
        const V v = V::loadu(x + c * S, count);
        vm = at::vec::maximum(vm, v);
        if (kRunnerUp) {
          const V better = (v < vxy) & (v > best);
          best = V::blendv(best, v, better);
          if (kIndex) index = V::blendv(index, V(T(c)), better);
        }
      }
      V vsum(T(0));
      for (int64_t c = 0; c < C; ++c) vsum = vsum + (V::loadu(x + c * S, count) - vm).exp();
      vm.store(m_l);
      vsum.store(sum_l);
      best.store(x2_l);
      index.store(index_l);
      for (int64_t l = 0; l < count; ++l) {
        const T m = m_l[l], ls = std::log(sum_l[l]);
        const T lpy = (xy_l[l] - m) - ls;
        out.log_p_y[item0 + l] = lpy;
        out.shift[item0 + l] = m;
        out.log_sum[item0 + l] = ls;
        if (!kRunnerUp) continue;
        const int64_t index2 =
            !kIndex ? 0 : (vector_index ? static_cast<int64_t>(index_l[l]) : -1);
        const auto [lpj, j] = runner_up_from_logit(x + l, C, S, m, ls, lpy, x2_l[l], index2);
        out.log_p_j[item0 + l] = lpj;
        if (kIndex) out.index_j[item0 + l] = j;
      }
    }
  });
}

// Σ_i w_i over counted items (w = weight[y] or 1; ignored items 0), checking every target.
template <typename T>
double total_weight(Targets Y, int64_t items, int64_t C, const T* weight) {
  double total[4] = {0, 0, 0, 0};
  int64_t bad = -1;
  for (int64_t i = 0; i < items; ++i) {
    const int64_t y = Y.data[i];
    if (y == Y.ignore_index) continue;
    if (y < 0 || y >= C) {
      bad = i;
      break;
    }
    total[i & 3] += weight ? static_cast<double>(weight[y]) : 1.0;
  }
  TORCH_CHECK(bad < 0, "target: expected class indices in [0, ", C, ") or ignore_index (",
              Y.ignore_index, "), got ", bad < 0 ? 0 : Y.data[bad]);
  return (total[0] + total[1]) + (total[2] + total[3]);
}

template <typename T>
void compute_stats(const torch::Tensor& logits, Targets Y, bool runner_up, bool need_index,
                   Stats<T> out) {
  const int64_t N = logits.size(0), C = logits.size(1), S = logits.size(2);
  const T* x = logits.const_data_ptr<T>();
  if (S == 1) {
    if (!runner_up) return stats_rows<T, false, false>(x, Y, N, C, out);
    if (!need_index) return stats_rows<T, true, false>(x, Y, N, C, out);
    return stats_rows<T, true, true>(x, Y, N, C, out);
  }
  if (!runner_up) return stats_strided<T, false, false>(x, Y, N, C, S, out);
  if (!need_index) return stats_strided<T, true, false>(x, Y, N, C, S, out);
  return stats_strided<T, true, true>(x, Y, N, C, S, out);
}

void check_logits(const torch::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 3 && logits.is_contiguous() && logits.device().is_cpu() &&
                  (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble),
              "logits: expected a contiguous float32/float64 CPU tensor (N, C, S), got ",
              logits.scalar_type(), " ", logits.sizes());
  TORCH_CHECK(logits.size(1) > 0, "logits: expected at least one class");
}

void check_items(const torch::Tensor& t, const char* name, int64_t items, at::ScalarType dtype) {
  TORCH_CHECK(t.is_contiguous() && t.numel() == items && t.scalar_type() == dtype, name,
              ": expected a contiguous ", dtype, " tensor of ", items, " items, got ",
              t.scalar_type(), " ", t.sizes());
}

const void* weight_ptr(const torch::Tensor& weight, const torch::Tensor& logits) {
  if (weight.numel() == 0) return nullptr;
  check_items(weight, "weight", logits.size(1), logits.scalar_type());
  return weight.const_data_ptr();
}

// logits (N, C, S); target (N, S) int64 (ignore_index or in [0, C)); weight (C,) or empty.
// Returns (log_p_y, log_p_j, index_j, shift, log_sum, total_weight), items shaped (N, S);
// log_p_j empty without runner_up, index_j empty unless need_index; total_weight 0-dim.
std::vector<torch::Tensor> stats(const torch::Tensor& logits, const torch::Tensor& target,
                                 const torch::Tensor& weight, int64_t ignore_index,
                                 bool runner_up, bool need_index) {
  check_logits(logits);
  const int64_t N = logits.size(0), C = logits.size(1), S = logits.size(2), items = N * S;
  check_items(target, "target", items, at::kLong);
  const void* w = weight_ptr(weight, logits);
  need_index = need_index && runner_up;
  auto opts = logits.options();
  auto log_p_y = torch::empty({N, S}, opts), shift = torch::empty({N, S}, opts);
  auto log_sum = torch::empty({N, S}, opts);
  auto log_p_j = torch::empty({runner_up ? N : 0, S}, opts);
  auto index_j = torch::empty({need_index ? N : 0, S}, opts.dtype(at::kLong));
  Targets Y{target.const_data_ptr<int64_t>(), ignore_index};
  double total = 0;
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "focalcal_fused_stats", [&] {
    total = total_weight<scalar_t>(Y, items, C, static_cast<const scalar_t*>(w));
    Stats<scalar_t> out{log_p_y.data_ptr<scalar_t>(), log_p_j.data_ptr<scalar_t>(),
                        index_j.data_ptr<int64_t>(), shift.data_ptr<scalar_t>(),
                        log_sum.data_ptr<scalar_t>()};
    if (items > 0) compute_stats<scalar_t>(logits, Y, runner_up, need_index, out);
  });
  return {log_p_y, log_p_j, index_j, shift, log_sum, torch::scalar_tensor(total, opts)};
}

// gamma = values[k] for the last k (thresholds descending) with reference < thresholds[k], else
// fallback; the reference is p_y, or p_y - p_j with `margin`. `inverse`: every item is inverse
// focal (b = 1 + p_y); `signed_gamma`: items whose gamma is negative are inverse focal with
// |gamma| (official AdaFocal).
struct GammaTable {
  std::vector<double> thresholds, values;
  double fallback;
  bool margin, inverse, signed_gamma;
};

// Per-item value -f log p_y and derivatives for items [begin, end), f = scale w b^gamma.
template <typename T>
void item_algebra(int64_t begin, int64_t end, Targets Y, const T* weight, const T* LPY,
                  const T* LPJ, const GammaTable& g, T scale, T* value, T* DY, T* DJ) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const V one(T(1)), tiny(std::numeric_limits<T>::min()), vscale(scale);
  T w_l[W];
  for (int64_t i = begin; i < end; i += W) {
    const int64_t count = std::min<int64_t>(W, end - i);
    for (int64_t l = 0; l < W; ++l) {
      const bool counted = l < count && Y.data[i + l] != Y.ignore_index;
      w_l[l] = counted ? (weight ? weight[Y.data[i + l]] : T(1)) : T(0);
    }
    const V lpy = V::loadu(LPY + i, count);
    const V py = lpy.exp();
    const V pj = LPJ ? V::loadu(LPJ + i, count).exp() : V(T(0));
    const V reference = g.margin ? py - pj : py;
    V gamma(T(g.fallback));
    for (size_t k = 0; k < g.thresholds.size(); ++k) {
      gamma = V::blendv(gamma, V(T(g.values[k])), reference < V(T(g.thresholds[k])));
    }
    // the sign of db/dlog p_y: -p_y (focal, dual focal) or +p_y (inverse focal)
    V base = pj - lpy.expm1(), signed_gamma = gamma, inverse(T(0));
    if (g.inverse) {
      base = one + py;
      signed_gamma = -gamma;
    } else if (g.signed_gamma) {
      inverse = gamma < V(T(0));
      gamma = gamma.abs();
      base = V::blendv(base, one + py, inverse);
      signed_gamma = V::blendv(gamma, -gamma, inverse);
    }
    base = at::vec::maximum(base, tiny);
    const V f = V::loadu(w_l) * base.pow(gamma) * vscale;
    (-(f * lpy)).store(value + i, count);
    if (!DY) continue;
    // d/dlog p_y of -f log p_y: -f (1 -+ gamma p_y log p_y / b); d/dlog p_j (db/dlog p_j = p_j,
    // none for inverse items): -f gamma p_j log p_y / b. b is clamped > 0 and p_y log p_y / b is
    // bounded (b >= 1 - p_y ~ -log p_y as p_y -> 1).
    (-f * (one - signed_gamma * (py * lpy / base))).store(DY + i, count);
    if (DJ) {
      const V d_j = -f * gamma * (pj * lpy / base);
      V::blendv(d_j, V(T(0)), inverse).store(DJ + i, count);
    }
  }
}

// The whole loss: returns (value, d_y, d_j, index_j, shift, log_sum); value is (N, S) for
// reduction 0 ("none"), else 0-dim (1 "mean": divided by the clamped total weight, 2 "sum");
// d_y, d_j, index_j are empty without need_grad (d_j, index_j also without runner_up).
std::vector<torch::Tensor> loss(const torch::Tensor& logits, const torch::Tensor& target,
                                const torch::Tensor& weight, int64_t ignore_index, bool runner_up,
                                bool need_grad, std::vector<double> thresholds,
                                std::vector<double> values, double fallback, bool margin,
                                bool inverse, bool signed_gamma, int64_t reduction) {
  TORCH_CHECK(thresholds.size() == values.size(), "thresholds, values: unequal lengths");
  TORCH_CHECK(reduction >= 0 && reduction <= 2, "reduction: expected 0, 1 or 2");
  TORCH_CHECK(!(inverse && runner_up), "inverse focal has no runner-up term");
  auto st = stats(logits, target, weight, ignore_index, runner_up, need_grad);
  const int64_t N = logits.size(0), S = logits.size(2), items = N * S;
  auto opts = logits.options();
  auto value = torch::empty({N, S}, opts);
  auto d_y = torch::empty({need_grad ? N : 0, S}, opts);
  auto d_j = torch::empty({need_grad && runner_up ? N : 0, S}, opts);
  const GammaTable g{std::move(thresholds), std::move(values), fallback, margin, inverse,
                     signed_gamma};
  torch::Tensor result = value;
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "focalcal_fused_loss", [&] {
    using T = scalar_t;
    const T* w = static_cast<const T*>(weight_ptr(weight, logits));
    const double total = st[5].item<double>();
    // the mean of an all-ignored batch is 0 (torch gives NaN): the total is clamped
    const T scale = reduction == 1
                        ? T(1) / std::max<T>(T(total), std::numeric_limits<T>::min())
                        : T(1);
    const Targets Y{target.const_data_ptr<int64_t>(), ignore_index};
    const T* lpj = runner_up ? st[1].const_data_ptr<T>() : nullptr;
    T* dy = need_grad ? d_y.data_ptr<T>() : nullptr;
    T* dj = need_grad && runner_up ? d_j.data_ptr<T>() : nullptr;
    constexpr int64_t W = Vectorized<T>::size();
    at::parallel_for(0, (items + W - 1) / W, 256, [&](int64_t begin, int64_t end) {
      item_algebra<T>(begin * W, std::min(end * W, items), Y, w, st[0].const_data_ptr<T>(), lpj,
                      g, scale, value.data_ptr<T>(), dy, dj);
    });
    if (reduction != 0) {
      const T* v = value.const_data_ptr<T>();
      double sum[4] = {0, 0, 0, 0};
      for (int64_t i = 0; i < items; ++i) sum[i & 3] += v[i];
      result = torch::scalar_tensor((sum[0] + sum[1]) + (sum[2] + sum[3]), opts);
    }
  });
  return {result, d_y, d_j, st[2], st[3], st[4]};
}

// dL/dx = g_y e_y + g_j e_j - (g_y + g_j) p with g = d * grad_out; items whose target is
// ignore_index have d = 0 and get a zero row.
template <typename T>
void backward_rows(const T* X, Targets Y, const T* shift, const T* log_sum, const T* d_y,
                   const int64_t* index_j, const T* d_j, const T* grad_out, bool per_item,
                   int64_t N, int64_t C, T* G) {
  using V = Vectorized<T>;
  at::parallel_for(0, N, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T go = grad_out[per_item ? i : 0];
      const T g_y = d_y[i] * go;
      const T g_j = d_j ? d_j[i] * go : T(0);
      const T coef = -(g_y + g_j);
      const T m = shift[i], ls = log_sum[i];
      T* g = G + i * C;
      at::vec::map([=](V v) { return V(coef) * ((v - V(m)) - V(ls)).exp(); }, g, X + i * C, C);
      g[Y.safe(i)] += g_y;
      if (d_j) g[index_j[i]] += g_j;
    }
  });
}

template <typename T>
void backward_strided(const T* X, Targets Y, const T* shift, const T* log_sum, const T* d_y,
                      const int64_t* index_j, const T* d_j, const T* grad_out, bool per_item,
                      int64_t N, int64_t C, int64_t S, T* G) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const int64_t chunks = (S + W - 1) / W;
  at::parallel_for(0, N * chunks, std::max<int64_t>(1, kGrain / (C * W)), [&](int64_t begin,
                                                                             int64_t end) {
    T gy_l[W], gj_l[W];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / chunks;
      const int64_t s0 = (task % chunks) * W;
      const int64_t count = std::min<int64_t>(W, S - s0);
      const int64_t item0 = n * S + s0;
      for (int64_t l = 0; l < W; ++l) {
        const T go = l < count ? grad_out[per_item ? item0 + l : 0] : T(0);
        gy_l[l] = l < count ? d_y[item0 + l] * go : T(0);
        gj_l[l] = l < count && d_j ? d_j[item0 + l] * go : T(0);
      }
      const V coef = -(V::loadu(gy_l) + V::loadu(gj_l));
      const V vm = V::loadu(shift + item0, count), vls = V::loadu(log_sum + item0, count);
      const T* x = X + n * C * S + s0;
      T* g = G + n * C * S + s0;
      for (int64_t c = 0; c < C; ++c) {
        (coef * ((V::loadu(x + c * S, count) - vm) - vls).exp()).store(g + c * S, count);
      }
      for (int64_t l = 0; l < count; ++l) {
        g[Y.safe(item0 + l) * S + l] += gy_l[l];
        if (d_j) g[index_j[item0 + l] * S + l] += gj_l[l];
      }
    }
  });
}

// The logit gradient (N, C, S) from forward's shift, log_sum and index_j and the per-item
// derivatives d_y, d_j (d_j, index_j empty without a runner-up term); grad_out one value or
// one per item.
torch::Tensor backward(const torch::Tensor& logits, const torch::Tensor& target,
                       int64_t ignore_index, const torch::Tensor& shift,
                       const torch::Tensor& log_sum, const torch::Tensor& d_y,
                       const torch::Tensor& index_j, const torch::Tensor& d_j,
                       const torch::Tensor& grad_out) {
  check_logits(logits);
  const int64_t N = logits.size(0), C = logits.size(1), S = logits.size(2), items = N * S;
  const auto dtype = logits.scalar_type();
  check_items(target, "target", items, at::kLong);
  check_items(shift, "shift", items, dtype);
  check_items(log_sum, "log_sum", items, dtype);
  check_items(d_y, "d_y", items, dtype);
  const bool has_j = d_j.numel() > 0;
  if (has_j) {
    check_items(d_j, "d_j", items, dtype);
    check_items(index_j, "index_j", items, at::kLong);
  }
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.scalar_type() == dtype &&
                  (grad_out.numel() == 1 || grad_out.numel() == items),
              "grad_out: expected one value or one per item, got ", grad_out.sizes());
  auto grad = torch::empty_like(logits);
  if (items == 0) return grad;
  const Targets Y{target.const_data_ptr<int64_t>(), ignore_index};
  const bool per_item = grad_out.numel() == items && items != 1;
  const int64_t* ij = has_j ? index_j.const_data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(dtype, "focalcal_fused_backward", [&] {
    using T = scalar_t;
    const T* dj = has_j ? d_j.const_data_ptr<T>() : nullptr;
    if (S == 1) {
      backward_rows<T>(logits.const_data_ptr<T>(), Y, shift.const_data_ptr<T>(),
                       log_sum.const_data_ptr<T>(), d_y.const_data_ptr<T>(), ij, dj,
                       grad_out.const_data_ptr<T>(), per_item, N, C, grad.data_ptr<T>());
    } else {
      backward_strided<T>(logits.const_data_ptr<T>(), Y, shift.const_data_ptr<T>(),
                          log_sum.const_data_ptr<T>(), d_y.const_data_ptr<T>(), ij, dj,
                          grad_out.const_data_ptr<T>(), per_item, N, C, S, grad.data_ptr<T>());
    }
  });
  return grad;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  const auto release = pybind11::call_guard<pybind11::gil_scoped_release>();
  m.def("stats", &stats, "per-item log p_y, runner-up, shift and log-sum", release);
  m.def("loss", &loss, "focal-family loss value and per-item derivatives", release);
  m.def("backward", &backward, "focal-family logit gradient", release);
}
