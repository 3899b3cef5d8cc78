"""SGG — Scaling with Gradient Grouping (Li et al., ACL 2025) as a torch optimizer wrapper."""

from .config import SGGConfig
from .optimizer import SGG, ClusterState

__all__ = ["SGG", "ClusterState", "SGGConfig"]
