"""Device statistics against plain references."""

from __future__ import annotations

import numpy as np
import torch

from recorder import stats
from runformat.schema import QUANTILES


def test_row_quantiles_match_torch_quantile():
    x = torch.randn(5, 301)
    want = torch.quantile(x, torch.tensor(QUANTILES), dim=1).T
    torch.testing.assert_close(stats.row_quantiles(x, QUANTILES), want)


def test_histogram_counts_cover_every_element_once():
    torch.manual_seed(0)
    x = torch.randn(1000)
    a = torch.randint(0, 3, (1000,), dtype=torch.uint8)
    edges = stats.linear_edges(x.min(), x.max(), 16)
    counts = stats.histogram_counts(x, edges, a, 3)
    assert counts.shape == (4, 16)
    assert counts[0].sum() == 1000 and torch.equal(counts[0], counts[1:].sum(0))
    for c in range(3):
        want = torch.histc(x[a == c], bins=16, min=float(edges[0]), max=float(edges[-1]))
        assert (counts[1 + c] - want.long()).abs().sum() <= 2  # edge rounding only


def test_log_edges_are_values_and_increasing():
    e = stats.log_edges(torch.tensor(1e-4), torch.tensor(1e2), 6)
    torch.testing.assert_close(e, torch.logspace(-4, 2, 7, dtype=torch.float64))


def test_sample_positions_are_distinct_sorted_and_seeded():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = stats.sample_positions(10_000, 100, g1)
    assert torch.equal(a, stats.sample_positions(10_000, 100, g2))
    assert a.unique().numel() == 100 and torch.equal(a, a.sort().values)
    assert torch.equal(stats.sample_positions(5, 100, g1), torch.arange(5))
    assert stats.quantile_positions(5, 12, g1).tolist() == [0, 1, 2, 3, 4] * 2 + [0, 1]


def test_layer_histograms_count_every_element_as_numpy_does_over_the_same_edges():
    torch.manual_seed(1)
    m = torch.randn(64, 50) * 1e-3
    v = torch.rand(64, 50) ** 4 * 1e-6
    a = torch.randint(0, 3, (64, 50), dtype=torch.uint8)
    m_edges, m_counts, a_edges, a_counts = stats.layer_histograms(m, v, 1e-3, 1e-8, 0.9, 16, a, 3)
    alr = stats.adaptive_lr(v, 1e-3, 1e-8, 0.9)
    assert float(m_edges[0]) == float(m.min()) and float(m_edges[-1]) == float(m.max())
    torch.testing.assert_close(a_edges[[0, -1]].float(), torch.stack([alr.min(), alr.max()]))
    for values, edges, counts in ((m, m_edges, m_counts), (alr, a_edges, a_counts)):
        assert counts.shape == (4, 16) and counts[0].sum() == m.numel()
        assert torch.equal(counts[0], counts[1:].sum(0))
        for c in range(-1, 3):
            x = values if c < 0 else values[a == c]
            want, _ = np.histogram(x.double().numpy(), bins=edges.numpy())
            assert np.abs(counts[1 + c].numpy() - want).sum() <= 2  # edge rounding only
    flat = stats.layer_histograms(
        torch.full((10,), 0.5), torch.full((10,), 1e-6), 1e-3, 1e-8, 1.0, 4
    )
    assert flat[1].tolist() == [[10, 0, 0, 0]] and flat[3].sum() == 10  # a constant layer
