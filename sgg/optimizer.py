"""``SGG``: the optimizer wrapper. It collects and delegates, as torch's ``adamw.py`` does: the
base's tensors go as plain lists to sgg/update.py, the layers' momenta to sgg/recluster.py, and
what it keeps per layer is made by the pure functions of sgg/state.py."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NoReturn

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer
from torch.utils.hooks import RemovableHandle

from . import native, native_recluster, sharding, update
from .config import SGGConfig
from .recluster import recluster
from .state import (
    ClusterState,
    check_saved,
    from_saved,
    initial_state,
    recluster_due,
    reclustered,
    to_saved,
)

__all__ = ["SGG", "ClusterState"]

_FAST_BASES = (torch.optim.Adam, torch.optim.AdamW)
# torch optimizers that keep Adam's momentum under the state key "exp_avg"
_MOMENT_BASES = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam,
                 torch.optim.Adamax)  # fmt: skip
# torch.optim.Optimizer's hook registries (its register_* methods fill them) and SGG's own: empty
# at construction and after unpickling (hooks are not carried over, as in torch)
_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
    "_recluster_hooks",
)


def _check_base_keeps_moments(base: Optimizer) -> None:
    """Refuse, before any step, a base whose state has no Adam momentum ``exp_avg``."""
    if isinstance(base, _MOMENT_BASES) and not isinstance(base, torch.optim.SparseAdam):
        return
    if any("exp_avg" in s for s in base.state.values()):
        return  # another optimizer that keeps Adam's momentum (seen in its state)
    raise TypeError(
        f"SGG needs a base optimizer that keeps Adam's momentum 'exp_avg' in its state; "
        f"{type(base).__name__} does not. Supported: Adam, AdamW (fused update); NAdam, RAdam, "
        "Adamax (generic path); any optimizer whose state already holds 'exp_avg'."
    )


def _refuse(p: Tensor) -> NoReturn:
    """The error for a parameter SGG cannot step: a sparse gradient, complex or meta data."""
    if p.grad is not None and p.grad.is_sparse:
        raise RuntimeError(
            "SGG does not support sparse gradients (a parameter of shape "
            f"{tuple(p.shape)} has one); use dense gradients or torch.optim.SparseAdam"
        )
    if p.is_complex():
        raise RuntimeError("SGG: complex parameters are not supported")
    raise RuntimeError(
        f"SGG: a parameter of shape {tuple(p.shape)} is on the 'meta' device (no data to "
        "update); materialise the model first, e.g. model.to_empty(device=...)"
    )


def _config_of(config: SGGConfig | None, explicit: dict[str, Any]) -> SGGConfig:
    """The ``SGGConfig`` from either ``config=`` or the options (None ones left out)."""
    if config is None:
        return SGGConfig(**explicit)
    if explicit:
        raise TypeError(
            f"SGG: pass either config= or options, not both (got config= and "
            f"{', '.join(sorted(explicit))})"
        )
    if not isinstance(config, SGGConfig):
        raise TypeError(f"SGG: config must be an SGGConfig, got {type(config).__name__}")
    return config


class SGG(Optimizer):
    r"""Scaling with Gradient Grouping (Li et al., ACL 2025, arXiv:2506.01049) around an optimizer.

    .. code-block:: text

        input: base optimizer (Adam/AdamW: lr, betas, eps, weight_decay), K = n_clusters,
               T = recluster_interval, beta3 = scale_decay, [lo, hi] = scale_bounds
        init:  for every layer l with ndim >= min_ndim: C_l = 0, S_l = 1 (K factors)
        for t = 1, 2, ...:
            m_t, v_t = base moment update (exp_avg, exp_avg_sq of the base's state)
            if t mod T == 0:
                for l: C_l = kmeans_1d(q_l, K)          q = m_t ("signed") or |m_t| ("abs")
                       D_lc = median_{i in c} |q_i - mean(q_l)|
                D = median_{all clustered i} |q_i - mean(q_layer(i))|   (global_mda)
                r_lc = clamp(D / (D_lc + eps), lo, hi);  S_lc = beta3 S_lc + (1 - beta3) r_lc
            p_i -= S_{l, C_l[i]} * lr_t * mhat_i / (sqrt(vhat_i) + eps)   (decay unscaled)

    ``param_groups``, ``state`` and ``defaults`` are the base optimizer's, so LR schedulers,
    gradient clipping, ``GradScaler`` and trainers work unchanged. SGG's own per-parameter state
    (``ClusterState``) is kept apart and saved under ``state_dict()["sgg"]``.

    Adam/AdamW run SGG's own fused update on the base's state tensors (the base's ``foreach``,
    ``fused`` and ``capturable`` flags select nothing: only ``fused``/``capturable`` decide, as
    in torch, that the ``step`` counters live on the parameters' device). Other bases that keep
    Adam's moments (NAdam, RAdam, Adamax) take a generic path: snapshot, ``base.step()``,
    ``p = p_old + factor * (p - p_old)`` (there the factor also scales weight decay). Bases
    without Adam's momentum ``exp_avg`` (SGD, Adagrad, ...) are refused at construction.

    ``n_clusters``, ``recluster_interval``, ``scale_decay`` and ``**options`` are ``SGGConfig``'s
    fields (None: its default); ``config=`` gives all of them at once and excludes the others.
    """

    def __init__(
        self,
        base_optimizer: Optimizer,
        n_clusters: int | None = None,
        recluster_interval: int | None = None,
        scale_decay: float | None = None,
        *,
        config: SGGConfig | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(base_optimizer, Optimizer):
            raise TypeError(
                f"SGG: base_optimizer must be a torch.optim.Optimizer, got "
                f"{type(base_optimizer).__name__}"
            )
        if isinstance(base_optimizer, SGG):
            raise TypeError("SGG: base_optimizer is already an SGG")
        _check_base_keeps_moments(base_optimizer)
        named = {
            "n_clusters": n_clusters,
            "recluster_interval": recluster_interval,
            "scale_decay": scale_decay,
        }
        config = _config_of(config, {k: v for k, v in named.items() if v is not None} | options)
        self.base_optimizer = base_optimizer
        self.config = config
        self._add_hook_dicts()
        self._warned_capturable_if_run_uncaptured = True
        self._layers: dict[Tensor, ClusterState] = {}
        self._generator = torch.Generator().manual_seed(config.seed)
        self._fast = type(base_optimizer) in _FAST_BASES
        self.sgg_step = 0
        self.last_recluster_step: int | None = None
        self.reclustered_last_step = False
        self.global_mda: Tensor | None = None
        # host-side copy of each parameter's step count: {param: (its "step" tensor, count)}
        self._step_counts: dict[Tensor, tuple[Tensor, int]] = {}
        self._extensions_started = False

    def _add_hook_dicts(self) -> None:
        """The hook registries that are missing (all of them when new or unpickled), and torch's
        profiling wrapper around ``step``."""
        for name in _HOOK_DICTS:
            self.__dict__.setdefault(name, OrderedDict())
        self._patch_step_function()

    # ---- copy and pickle (like torch optimizers: hooks are not carried over) ---------------
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _HOOK_DICTS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_extensions_started", False)  # pickled before it existed
        self._add_hook_dicts()

    # ---- the base optimizer's containers, forwarded (load_state_dict replaces them) --------
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.base_optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self.base_optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.base_optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.base_optimizer.defaults = value

    @property
    def observe_only(self) -> bool:
        return self.config.observe_only

    def __repr__(self) -> str:
        return f"SGG({self.base_optimizer!r}, config={self.config})"

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(param_group)

    # ---- introspection -------------------------------------------------------------------
    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def _eligible(self, p: Tensor) -> bool:
        return p.dim() >= self.config.min_ndim and p.numel() > 0 and not p.is_complex()

    def clustered_params(self) -> list[Tensor]:
        """Parameters SGG clusters (ndim >= min_ndim, non-empty, requires grad), in order."""
        return [p for p in self._params() if p.requires_grad and self._eligible(p)]

    def _assign_device(self, p: Tensor) -> torch.device:
        ad = self.config.assignment_device
        return torch.device(ad) if ad is not None else p.device

    def cluster_state(self, p: Tensor) -> ClusterState | None:
        """``ClusterState`` of ``p``; None when SGG does not cluster ``p``."""
        cluster = self._layers.get(p)
        if cluster is None:
            if not (p.requires_grad and self._eligible(p)):
                return None
            if not any(p is q for q in self._params()):
                return None
            cluster = self._layers[p] = initial_state(
                self.config.n_clusters,
                p.numel(),
                sharding.local_numel(p),  # sharded p: the rank's shard (sizes stay global)
                device=p.device,
                assign_device=self._assign_device(p),
            )
        return cluster

    def register_recluster_hook(self, hook: Callable[[SGG, int], None]) -> RemovableHandle:
        """``hook(opt, step)`` runs after each re-cluster."""
        handle = RemovableHandle(self._recluster_hooks)
        self._recluster_hooks[handle.id] = hook
        return handle

    # ---- stepping ---------------------------------------------------------------------------
    def _check_grads(self) -> None:
        for p in self._params():
            if p.grad is not None and p.grad.is_sparse:
                _refuse(p)

    def _advance_clock(self) -> bool:
        self.sgg_step += 1
        self.reclustered_last_step = recluster_due(self.sgg_step, self.config.recluster_interval)
        return self.reclustered_last_step

    def observe_step(self) -> None:
        """Advance SGG's clock and re-cluster if due, without stepping the base optimizer."""
        if self._advance_clock():
            # only the layers with a gradient now: one without keeps its clusters and factors
            self._recluster([p for p in self.clustered_params() if p.grad is not None])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        """One step of the base optimizer with each element's step scaled by its factor."""
        if not self._extensions_started:
            self._start_extensions()
        if self.config.observe_only:
            self._check_grads()
            loss = self.base_optimizer.step(closure) if closure else self.base_optimizer.step()
            self.observe_step()
            return loss
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._fast:
            self._adam_step()  # checks each gradient as it collects it
        else:
            self._check_grads()
            self._generic_step()
        return loss

    def _start_extensions(self) -> None:
        """Start building or loading the native code at the first step, in the background (no
        step waits: sgg/extensions.py): the re-cluster pass, and the update kernel if it will
        run; both at once. Until each is ready its torch path runs (same results to float32
        rounding)."""
        self._extensions_started = True
        if not any(p.is_cpu for p in self.clustered_params()):
            return
        native_recluster.EXTENSION.start()
        if self._resolve_impl() == "native":
            native.EXTENSION.start()

    def _factor_of(self, p: Tensor) -> tuple[Tensor, Tensor] | None:
        cluster = self._layers.get(p)
        if cluster is None or cluster.last_recluster_step is None:
            return None
        return cluster.assignments, cluster.factors

    def _resolve_impl(self) -> str:
        return update.resolve_update_impl(self.config.update_impl)

    def _live(self, group: dict[str, Any]) -> list[tuple[Tensor, dict]]:
        """The group's parameters with a gradient and their base state (created on first use,
        as torch's ``_init_group`` does)."""
        state = self.state
        live = []
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse or p.is_complex() or p.is_meta:
                _refuse(p)
            param_state = state[p]
            if len(param_state) == 0:
                update.init_adam_state_(p, param_state, group)
                self._step_counts[p] = (param_state["step"], 0)  # known: no read needed
            live.append((p, param_state))
        return live

    def _group_batch(
        self, group: dict[str, Any], *, factor_always: bool
    ) -> tuple[update.AdamBatch, list[Tensor]] | None:
        """The group's parameters with a gradient (returned too) as an ``AdamBatch`` of plain
        lists (local shards when sharded); the group's step counters advance here (same tensors
        and values as the base's). ``factor_always``: a clustered parameter carries its factor
        even before its first re-cluster (all 1): the compiled kernel then has one variant per
        kind of tensor from the first step on, and nothing compiles at the first re-cluster."""
        if group.get("differentiable", False):
            raise RuntimeError("SGG does not support differentiable=True base optimizers")
        live = self._live(group)
        if not live:
            return None
        torch._foreach_add_([s["step"] for _, s in live], 1)  # one call for the group's counters
        h = update.group_hyper(
            group,
            adamw=isinstance(self.base_optimizer, torch.optim.AdamW),
            scale_weight_decay=self.config.scale_weight_decay,
            n_clusters=self.config.n_clusters,
        )
        is_sharded, local, layers = sharding.is_sharded, sharding.local, self._layers
        lists: tuple[list, ...] = ([], [], [], [], [])  # params, grads, moments, amsgrad's max
        factors = []
        for p, param_state in live:
            tensors = (p, p.grad, param_state["exp_avg"], param_state["exp_avg_sq"])
            if h.amsgrad:
                tensors += (param_state["max_exp_avg_sq"],)
            if is_sharded(p):  # the elementwise update runs on the local shards
                tensors = tuple(local(t) for t in tensors)
            for out, t in zip(lists, tensors, strict=False):
                out.append(t)
            cluster = layers.get(p)
            if cluster is None and factor_always:
                cluster = self.cluster_state(p)  # creates the initial state of a clustered p
            if cluster is None or (cluster.last_recluster_step is None and not factor_always):
                factors.append(None)
            else:
                factors.append((cluster.assignments, cluster.factors))
        params, grads, exp_avgs, exp_avg_sqs, maxes = lists
        batch = update.AdamBatch(
            params=params,
            grads=grads,
            exp_avgs=exp_avgs,
            exp_avg_sqs=exp_avg_sqs,
            max_exp_avg_sqs=maxes if h.amsgrad else None,
            steps=self._advance_step_counts(live),
            factors=factors,
            h=h,
        )
        return batch, [p for p, _ in live]

    def _advance_step_counts(self, live: list[tuple[Tensor, dict]]) -> list[int]:
        """The step counts after this step's increment, from a host-side copy: the base's
        ``step`` tensors (on the device with ``fused``/``capturable``) are read only when first
        seen or replaced (a load), never in the steady step (no device-to-host sync)."""
        known = self._step_counts
        counts = []
        for p, param_state in live:
            tensor = param_state["step"]
            entry = known.get(p)
            count = entry[1] + 1 if entry is not None and entry[0] is tensor else int(tensor)
            known[p] = (tensor, count)
            counts.append(count)
        return counts

    def _adam_step(self) -> None:
        due = self._advance_clock()
        impl = self._resolve_impl()
        factor_always = impl != "eager"
        batches = [
            b
            for g in self.param_groups
            if (b := self._group_batch(g, factor_always=factor_always)) is not None
        ]
        if not due:
            fall_back = self.config.update_impl == "auto"
            for batch, _ in batches:
                update.adam_batch_step_(batch, impl=impl, fall_back=fall_back)
            return
        # literal order: moments of every layer, re-cluster on m_t, then parameter updates
        for batch, _ in batches:
            update.adam_batch_moments_(batch, impl=impl)
        self._recluster([p for p in self.clustered_params() if p.grad is not None])
        for batch, params in batches:
            update.adam_batch_apply_(batch, [self._factor_of(p) for p in params], impl=impl)

    def _generic_step(self) -> None:
        due = recluster_due(self.sgg_step + 1, self.config.recluster_interval)
        olds = {}
        for p in self._params():
            if p.grad is None or not self._eligible(p):
                continue
            if due or self._factor_of(p) is not None:
                olds[p] = sharding.local(p.detach()).clone()
        self.base_optimizer.step()
        for p in olds:
            if "exp_avg" not in self.state[p]:
                raise RuntimeError(
                    f"SGG needs the base optimizer to keep the momentum 'exp_avg' in its state; "
                    f"{type(self.base_optimizer).__name__} keeps {sorted(self.state[p])}. "
                    "Supported: Adam, AdamW (fast path); NAdam, RAdam, Adamax, ... (generic path)."
                )
        self.observe_step()
        for p, old in olds.items():
            factor_of = self._factor_of(p)
            if factor_of is None:
                continue
            local_param = sharding.local(p)
            factor = update.per_element_factor(factor_of, local_param)
            old_float = old.float()
            local_param.copy_(old_float + factor * (local_param.float() - old_float))

    # ---- re-clustering ----------------------------------------------------------------------
    def _momentum(self, p: Tensor) -> Tensor | None:
        """``p``'s momentum ``exp_avg`` in the base's state (None before its first step)."""
        param_state = self.state.get(p) if hasattr(self.state, "get") else None
        if not param_state:
            return None
        return param_state.get("exp_avg")

    def _quantity(self, p: Tensor) -> Tensor:
        # a sharded momentum is gathered whole (a collective; same layer order on every rank)
        q = sharding.full(self._momentum(p).detach()).reshape(-1).float()
        return q.abs() if self.config.cluster_on == "abs" else q

    @torch.no_grad()
    def _recluster(self, params: list[Tensor] | None = None) -> None:
        """Re-cluster ``params`` (default: every clustered parameter) on their momentum now."""
        todo = [
            p
            for p in (self.clustered_params() if params is None else params)
            if self._momentum(p) is not None
        ]
        if not todo:
            return
        prevs = [self.cluster_state(p) for p in todo]
        # all layers at once; the momenta are gathered lazily, in layer order (sgg/recluster.py)
        fits = recluster(
            (self._quantity(p) for p in todo),
            [prev.factors for prev in prevs],
            config=self.config,
            generator=self._generator,
        )
        self.global_mda = fits.global_mda
        step = self.sgg_step
        new = reclustered(todo, prevs, fits.layers, step=step, k=self.config.n_clusters,
                          assign_device=self._assign_device)  # fmt: skip
        self._layers.update(zip(todo, new, strict=True))
        self.last_recluster_step = step
        for hook in list(self._recluster_hooks.values()):
            hook(self, step)

    # ---- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The base optimizer's state_dict plus SGG's state under the key ``"sgg"``."""
        for pre in self._optimizer_state_dict_pre_hooks.values():
            pre(self)
        sd = self.base_optimizer.state_dict()
        sd["sgg"] = {
            "version": 1,
            "sgg_step": self.sgg_step,
            "last_recluster_step": self.last_recluster_step,
            "reclustered_last_step": self.reclustered_last_step,
            "global_mda": self.global_mda,
            "generator": self._generator.get_state(),
            "config": dataclasses.asdict(self.config),
            "layers": {
                i: to_saved(self._layers[p])
                for i, p in enumerate(self._params())
                if p in self._layers
            },
        }
        for post in self._optimizer_state_dict_post_hooks.values():
            out = post(self, sd)
            if out is not None:
                sd = out
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Load what ``state_dict()`` returned, or a plain base optimizer's state_dict.

        An SGG state_dict must come from an SGG with the same options (``update_impl``,
        ``assignment_device`` and ``observe_only`` may differ): any other difference is a
        ``ValueError`` naming it, raised before anything is loaded. A plain base state_dict
        (no ``"sgg"`` key) means "this base run continues as SGG": the base state is loaded,
        SGG's clock is set to the base's step count (the largest ``step`` in its state; 0
        without state) and every layer starts from the initial clustering (all in cluster 0,
        factors 1), so the next re-cluster is at the next multiple of T.
        """
        for pre in self._optimizer_load_state_dict_pre_hooks.values():
            out = pre(self, state_dict)
            if out is not None:
                state_dict = out
        state_dict = dict(state_dict)
        saved = state_dict.pop("sgg", None)
        params = self._params()
        if saved is not None:
            check_saved(saved, self.config, params)  # before anything is loaded
        self.base_optimizer.load_state_dict(state_dict)
        self._layers = {}
        self._step_counts = {}
        if saved is None:
            steps = [float(s["step"]) for s in self.state.values() if "step" in s]
            self.sgg_step = int(max(steps, default=0))
            self.last_recluster_step = None
            self.reclustered_last_step = False
            self.global_mda = None
        else:
            self.sgg_step = int(saved["sgg_step"])
            last = saved["last_recluster_step"]
            self.last_recluster_step = None if last is None else int(last)
            self.reclustered_last_step = bool(saved["reclustered_last_step"])
            self.global_mda = saved["global_mda"]
            self._generator.set_state(saved["generator"].cpu())
            for i, fields in saved["layers"].items():
                p = params[int(i)]
                self._layers[p] = from_saved(
                    fields, device=p.device, assign_device=self._assign_device(p)
                )
        for post in self._optimizer_load_state_dict_post_hooks.values():
            post(self)
