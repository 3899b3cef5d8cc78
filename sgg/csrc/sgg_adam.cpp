// SGG's Adam/AdamW update for float32 tensors on the CPU: each element's step multiplied by its
// cluster's factor, for a whole list of tensors in one call.
//
// Why a native kernel: the arithmetic is one elementwise pass, as in torch's fused AdamW, but a
// torch.compile'd call costs 15-40 us of Python per tensor (guards, size arguments), which for a
// model of hundreds of tensors costs more than the update itself. Here the loop over tensors and
// the threading are in C++ (one parallel region per call), as in ATen's fused Adam. The
// arithmetic follows the eager reference (sgg/update.py: adam_moments_, then adam_apply_).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

// what one call does: the whole step, or one phase of a re-cluster step (moments, then apply)
enum Phase : int { kFull = 0, kMoments = 1, kApply = 2 };

struct Hyper {
  float lerp_weight;  // 1 - beta1, the weight of torch.lerp(exp_avg, grad, .)
  bool lerp_from_end; // torch.lerp's form for weights >= 0.5
  float beta2, one_minus_beta2, eps, bc2_sqrt, step_size;
  float weight_decay;  // Adam (L2): g += wd * p
  float decay;         // AdamW: p *= 1 - lr * wd (times the factor with scale_weight_decay)
  float sign;          // -1 with maximize
};

struct Piece {
  float* p;
  const float* g;
  float* m;
  float* v;
  const uint8_t* a;  // cluster of each element, or nullptr (factor 1)
  const float* s;    // the tensor's K factors
  int64_t begin, end;
};

// K > 0: the factor by a chain of selects (vectorises); K == 0: factor 1; K < 0: a gather.
template <int K, bool SCALE_WD, bool COUPLED, int PHASE>
void run_piece(const Piece& w, const Hyper& h) {
  float* __restrict__ p = w.p;
  const float* __restrict__ g = w.g;
  float* __restrict__ m = w.m;
  float* __restrict__ v = w.v;
  const uint8_t* __restrict__ a = w.a;
  const float* s = w.s;
  float sc[K > 0 ? K : 1];
  if constexpr (K > 0) {
    for (int c = 0; c < K; ++c) sc[c] = s[c];
  }
  const float lw = h.lerp_weight, lw_end = h.lerp_weight - 1.0f;
  const bool from_end = h.lerp_from_end;
  const float b2 = h.beta2, b2c = h.one_minus_beta2, eps = h.eps, bc2 = h.bc2_sqrt;
  const float ss = h.step_size, wd = h.weight_decay, decay = h.decay, sign = h.sign;
  const float keep = 1.0f - decay;
#pragma omp simd
  for (int64_t i = w.begin; i < w.end; ++i) {
    float mi, vi;
    if constexpr (PHASE != kApply) {
      float gi = g[i] * sign;
      if constexpr (COUPLED) gi = gi + wd * p[i];
      const float d = gi - m[i];
      mi = from_end ? gi + lw_end * d : m[i] + lw * d;
      vi = v[i] * b2 + b2c * gi * gi;
      m[i] = mi;
      v[i] = vi;
    } else {
      mi = m[i];
      vi = v[i];
    }
    if constexpr (PHASE != kMoments) {
      const float denom = std::sqrt(vi) / bc2 + eps;
      float f = 1.0f;
      if constexpr (K > 0) {
        const int ai = a[i];
        f = sc[K - 1];
        for (int c = K - 2; c >= 0; --c) f = ai == c ? sc[c] : f;
      } else if constexpr (K < 0) {
        f = s[a[i]];
      }
      const float kept = SCALE_WD ? 1.0f - decay * f : keep;
      p[i] = p[i] * kept - ss * ((mi * f) / denom);
    }
  }
}

using PieceFn = void (*)(const Piece&, const Hyper&);

template <bool SCALE_WD, bool COUPLED, int PHASE>
PieceFn pick_k(bool has_factor, int64_t k) {
  if (!has_factor) return &run_piece<0, SCALE_WD, COUPLED, PHASE>;
  switch (k) {
    case 1: return &run_piece<1, SCALE_WD, COUPLED, PHASE>;
    case 2: return &run_piece<2, SCALE_WD, COUPLED, PHASE>;
    case 3: return &run_piece<3, SCALE_WD, COUPLED, PHASE>;
    case 4: return &run_piece<4, SCALE_WD, COUPLED, PHASE>;
    default: return &run_piece<-1, SCALE_WD, COUPLED, PHASE>;
  }
}

template <bool SCALE_WD, bool COUPLED>
PieceFn pick_phase(int64_t phase, bool has_factor, int64_t k) {
  if (phase == kMoments) return pick_k<SCALE_WD, COUPLED, kMoments>(has_factor, k);
  if (phase == kApply) return pick_k<SCALE_WD, COUPLED, kApply>(has_factor, k);
  return pick_k<SCALE_WD, COUPLED, kFull>(has_factor, k);
}

PieceFn pick(bool scale_wd, bool coupled, int64_t phase, bool has_factor, int64_t k) {
  if (scale_wd) {
    return coupled ? pick_phase<true, true>(phase, has_factor, k)
                   : pick_phase<true, false>(phase, has_factor, k);
  }
  return coupled ? pick_phase<false, true>(phase, has_factor, k)
                 : pick_phase<false, false>(phase, has_factor, k);
}

void check(const at::Tensor& t, const at::Tensor& like, at::ScalarType dtype, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), "sgg_adam_: ", what, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == dtype, "sgg_adam_: ", what, " has dtype ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "sgg_adam_: ", what, " must be contiguous");
  TORCH_CHECK(t.numel() == like.numel(), "sgg_adam_: ", what, " has ", t.numel(),
              " elements, the parameter ", like.numel());
}

}  // namespace

// One step (or one phase) of every tensor of the lists. ``assigns``/``scales`` are empty (factor
// 1) or one per tensor (uint8 cluster of each element; float32 factors, ``n_clusters`` of them).
// The bias corrections come from the caller (computed once in float64, as the reference does).
void sgg_adam_(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
               const std::vector<at::Tensor>& exp_avgs,
               const std::vector<at::Tensor>& exp_avg_sqs,
               const std::vector<at::Tensor>& assigns, const std::vector<at::Tensor>& scales,
               double lr, double beta1, double beta2, double eps, double weight_decay,
               double step_size, double bias_correction2_sqrt, bool decoupled, bool maximize,
               bool scale_weight_decay, int64_t n_clusters, int64_t phase) {
  const size_t n = params.size();
  TORCH_CHECK(exp_avgs.size() == n && exp_avg_sqs.size() == n, "sgg_adam_: list lengths differ");
  TORCH_CHECK(phase == kApply || grads.size() == n, "sgg_adam_: one gradient per parameter");
  TORCH_CHECK(phase >= kFull && phase <= kApply, "sgg_adam_: unknown phase ", phase);
  const bool has_factor = !assigns.empty();
  TORCH_CHECK(!has_factor || (assigns.size() == n && scales.size() == n),
              "sgg_adam_: assigns/scales must be empty or one per parameter");
  TORCH_CHECK(n_clusters >= 1 && n_clusters <= 256, "sgg_adam_: n_clusters must be 1..256");
  const double w = 1.0 - beta1;
  Hyper h;
  h.lerp_weight = static_cast<float>(w);
  h.lerp_from_end = std::abs(static_cast<float>(w)) >= 0.5f;
  h.beta2 = static_cast<float>(beta2);
  h.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  h.eps = static_cast<float>(eps);
  h.bc2_sqrt = static_cast<float>(bias_correction2_sqrt);
  h.step_size = static_cast<float>(step_size);
  h.weight_decay = static_cast<float>(weight_decay);
  h.decay = decoupled ? static_cast<float>(lr * weight_decay) : 0.0f;
  h.sign = maximize ? -1.0f : 1.0f;
  const bool coupled = !decoupled && weight_decay != 0.0;
  const bool scale_wd = decoupled && scale_weight_decay && weight_decay != 0.0;
  const PieceFn fn = pick(scale_wd, coupled, phase, has_factor, n_clusters);

  // pieces of at most kChunk elements: the threads share big tensors, and one parallel region
  // covers the whole list
  constexpr int64_t kChunk = 1 << 15;
  std::vector<Piece> pieces;
  int64_t total = 0;
  for (size_t t = 0; t < n; ++t) {
    const at::Tensor& p = params[t];
    check(p, p, at::kFloat, "param");
    if (phase != kApply) check(grads[t], p, at::kFloat, "grad");
    check(exp_avgs[t], p, at::kFloat, "exp_avg");
    check(exp_avg_sqs[t], p, at::kFloat, "exp_avg_sq");
    const uint8_t* a = nullptr;
    const float* s = nullptr;
    if (has_factor) {
      check(assigns[t], p, at::kByte, "assignments");
      const at::Tensor& f = scales[t];
      TORCH_CHECK(f.device().is_cpu() && f.scalar_type() == at::kFloat && f.is_contiguous() &&
                      f.numel() == n_clusters,
                  "sgg_adam_: factors must be a contiguous float32 CPU tensor of n_clusters");
      a = assigns[t].data_ptr<uint8_t>();
      s = f.data_ptr<float>();
    }
    const float* g = phase != kApply ? grads[t].data_ptr<float>() : nullptr;
    const int64_t numel = p.numel();
    total += numel;
    for (int64_t b = 0; b < numel; b += kChunk) {
      pieces.push_back({p.data_ptr<float>(), g, exp_avgs[t].data_ptr<float>(),
                        exp_avg_sqs[t].data_ptr<float>(), a, s, b, std::min(numel, b + kChunk)});
    }
  }
  // below two chunks one thread is faster than waking the others
  const int64_t count = static_cast<int64_t>(pieces.size());
  const int64_t grain = total < 2 * kChunk ? std::max<int64_t>(count, 1) : 1;
  at::parallel_for(0, count, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) fn(pieces[i], h);
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sgg_adam_", &sgg_adam_, "SGG's factor-scaled Adam/AdamW step over lists of tensors");
}
