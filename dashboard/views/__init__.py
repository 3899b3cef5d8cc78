"""One page per view: each module here draws one tab from a `Ctx` (its `page` function)."""

from collections.abc import Callable

from dashboard.context import Ctx
from dashboard.views import clusters, gradients, loss, runs, summary, sweep

PAGES: dict[str, Callable[[Ctx], None]] = {
    "Summary": summary.page,
    "Loss": loss.page,
    "Gradient stability": gradients.page,
    "Clusters": clusters.page,
    "Sweep": sweep.page,
    "Runs": runs.page,
}
VIEWS = list(PAGES)
