// The per-layer full-data pass of SGG's re-cluster (sgg/clustering.py, _assign_full) for
// float32 CPU layers: each element's cluster label, the clusters' sizes and their float64 sums,
// for a whole list of (layer, candidate boundaries) jobs in one call.
//
// Why a native pass: in torch the pass is K - 1 comparison passes (or a bucketize), a count per
// comparison, a float64 copy of the layer and a weighted bincount: several passes over memory
// per layer, plus Python per layer. Here it is one pass per layer, and the layers are spread
// over torch's threads (at::parallel_for, one layer per task) in one parallel region.
//
// Bit-identity with the torch path: labels and sizes are integers (any order gives the same).
// The sums are float64 additions, which depend on the order: torch.bincount(labels, weights)
// on the CPU adds the weights one element at a time in element order, into one float64
// accumulator per bin; the loops below do exactly that: one running sum per cluster, each
// element's value added to its cluster's sum in element order (no reassociation: no
// -ffast-math; the vectors of run_job_small hold one cluster per lane, never several elements
// of one cluster).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

// one job: a layer and one candidate's K - 1 boundaries
struct Job {
  const float* x;
  int64_t n;
  const float* bounds;  // sorted ascending (non-decreasing), K - 1 values
  uint8_t* labels;      // n outputs
  int64_t* sizes;       // K outputs: finite points per cluster
  double* sums;         // K outputs: float64 sum of the finite points per cluster
  uint8_t nonfinite_label;  // where NaN/inf elements go (the cluster nearest to 0)
};

// The label of a finite x: the number of boundaries strictly below it, which is what
// torch.bucketize(x, bounds, right=False) returns and what the sum of the comparisons
// (x > bounds[j]) counts. For small K a branch-free count of the comparisons (K is a
// compile-time constant: the loop unrolls); for larger K a binary search (lower_bound).
// Equal neighbouring bounds are fine (the cluster between them stays empty).
template <int K>
inline int label_small(float v, const float* b) {
  int lab = 0;
  for (int j = 0; j < K - 1; ++j) lab += v > b[j];
  return lab;
}

inline int label_search(float v, const float* b, int k) {
  return static_cast<int>(std::lower_bound(b, b + (k - 1), v) - b);
}

// The K <= 8 sums and sizes as lanes of (GCC/Clang) vectors: 4 float64 or int64 lanes each.
typedef double f64x4 __attribute__((vector_size(32)));
typedef int64_t i64x4 __attribute__((vector_size(32)));

// One job with K <= 8 known at compile time: the K sums and sizes live in vector registers,
// lane j for cluster j. Each element adds its value to its own cluster's lane and +0.0 (all
// bits zero) to the others: s + 0.0 == s exactly for every s a sum can hold (a sum that starts
// at +0.0 is never -0.0 in round-to-nearest), so each lane still adds its cluster's values
// alone, in element order, as torch.bincount does. Why lanes: a sum indexed by the label would
// live in memory and each element would wait for the previous store of its cluster's sum;
// scalar code selecting the lane (`j == c ? v : 0`) is compiled into branches on the label,
// mispredicted on most elements when clusters interleave (4x slower). Vector masks do not
// branch: one vector add per element per 4 clusters.
template <int K>
void run_job_small(const Job& w) {
  constexpr int L = (K + 3) / 4;  // vectors of 4 lanes
  const float* __restrict__ x = w.x;
  uint8_t* __restrict__ lab = w.labels;
  float b[K > 1 ? K - 1 : 1];
  for (int j = 0; j < K - 1; ++j) b[j] = w.bounds[j];
  f64x4 sums[L];
  i64x4 sizes[L], lane[L];
  for (int l = 0; l < L; ++l) {
    sums[l] = f64x4{0.0, 0.0, 0.0, 0.0};
    sizes[l] = i64x4{0, 0, 0, 0};
    lane[l] = i64x4{4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3};
  }
  for (int64_t i = 0; i < w.n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {  // left out of the sizes and sums (torch: labels[finite])
      lab[i] = w.nonfinite_label;
      continue;
    }
    const int c = label_small<K>(v, b);
    lab[i] = static_cast<uint8_t>(c);
    const double dv = static_cast<double>(v);  // exact conversion
    const i64x4 bits = (i64x4)(f64x4{dv, dv, dv, dv});  // reinterpreted, not converted
    for (int l = 0; l < L; ++l) {
      const i64x4 hit = lane[l] == int64_t{c};  // all ones in lane c, else 0
      sums[l] += (f64x4)(bits & hit);            // dv in lane c, +0.0 elsewhere
      sizes[l] -= hit;                           // -(-1): one more in lane c
    }
  }
  for (int j = 0; j < K; ++j) {
    w.sums[j] = sums[j / 4][j % 4];
    w.sizes[j] = sizes[j / 4][j % 4];
  }
}

// One job with any K (<= 256): labels by binary search, sums indexed by the label (the
// order-dependent add of torch.bincount, one element at a time).
void run_job_any(const Job& w, int k) {
  const float* __restrict__ x = w.x;
  uint8_t* __restrict__ lab = w.labels;
  std::vector<double> sums(k, 0.0);
  std::vector<int64_t> sizes(k, 0);
  for (int64_t i = 0; i < w.n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      lab[i] = w.nonfinite_label;
      continue;
    }
    const int c = label_search(v, w.bounds, k);
    lab[i] = static_cast<uint8_t>(c);
    sizes[c] += 1;
    sums[c] += static_cast<double>(v);
  }
  std::copy(sizes.begin(), sizes.end(), w.sizes);
  std::copy(sums.begin(), sums.end(), w.sums);
}

void dispatch(const Job& w, int k) {
  switch (k) {
    case 1: return run_job_small<1>(w);
    case 2: return run_job_small<2>(w);
    case 3: return run_job_small<3>(w);
    case 4: return run_job_small<4>(w);
    case 5: return run_job_small<5>(w);
    case 6: return run_job_small<6>(w);
    case 7: return run_job_small<7>(w);
    case 8: return run_job_small<8>(w);
    default: return run_job_any(w, k);
  }
}

void check_f32_cpu(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), what,
              " must be contiguous float32 on the CPU");
}

}  // namespace

// Runs every job (xs[j] with bounds[j]) and writes labels[j] (uint8, xs[j].numel()), sizes
// (int64 (J, K)) and sums (float64 (J, K)). Jobs are taken one per task in the given order
// (the caller puts the largest first, so a big layer does not start last while the other
// threads idle).
void full_pass(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& bounds,
               const std::vector<int64_t>& nonfinite_labels, const std::vector<at::Tensor>& labels,
               at::Tensor sizes, at::Tensor sums, int64_t k) {
  const int64_t jobs = static_cast<int64_t>(xs.size());
  TORCH_CHECK(k >= 1 && k <= 256, "full_pass: K must be in 1..256 (uint8 labels)");
  TORCH_CHECK(static_cast<int64_t>(bounds.size()) == jobs &&
                  static_cast<int64_t>(labels.size()) == jobs &&
                  static_cast<int64_t>(nonfinite_labels.size()) == jobs,
              "full_pass: one bound, label buffer and non-finite label per job");
  TORCH_CHECK(sizes.scalar_type() == at::kLong && sizes.is_contiguous() && sizes.dim() == 2 &&
                  sizes.size(0) == jobs && sizes.size(1) == k,
              "full_pass: sizes must be contiguous int64 (jobs, K)");
  TORCH_CHECK(sums.scalar_type() == at::kDouble && sums.is_contiguous() && sums.dim() == 2 &&
                  sums.size(0) == jobs && sums.size(1) == k,
              "full_pass: sums must be contiguous float64 (jobs, K)");
  std::vector<Job> work(jobs);
  for (int64_t j = 0; j < jobs; ++j) {
    check_f32_cpu(xs[j], "full_pass: each layer");
    check_f32_cpu(bounds[j], "full_pass: each bounds tensor");
    const at::Tensor& lab = labels[j];
    TORCH_CHECK(lab.device().is_cpu() && lab.scalar_type() == at::kByte && lab.is_contiguous() &&
                    lab.numel() == xs[j].numel(),
                "full_pass: each label buffer must be contiguous uint8 of the layer's size");
    TORCH_CHECK(bounds[j].numel() == k - 1, "full_pass: each bounds tensor must hold K - 1 values");
    TORCH_CHECK(nonfinite_labels[j] >= 0 && nonfinite_labels[j] < k,
                "full_pass: non-finite label out of range");
    work[j] = Job{xs[j].data_ptr<float>(), xs[j].numel(), bounds[j].data_ptr<float>(),
                  lab.data_ptr<uint8_t>(), sizes.data_ptr<int64_t>() + j * k,
                  sums.data_ptr<double>() + j * k, static_cast<uint8_t>(nonfinite_labels[j])};
  }
  const int kk = static_cast<int>(k);
  // at::parallel_for hands each thread one contiguous block of its range (static schedule),
  // which with the largest layers first would give them all to the first thread. So the range
  // is the threads, and each takes the next job from a shared counter until none is left:
  // one layer per task, largest first, dynamically balanced. Each job is one layer's whole
  // pass in element order, so the results do not depend on the thread count.
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), jobs);
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      for (int64_t j = next.fetch_add(1); j < jobs; j = next.fetch_add(1)) dispatch(work[j], kk);
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("full_pass", &full_pass,
        "SGG re-cluster: labels, sizes and float64 sums of each (layer, bounds) job");
}
