"""The deviations of a plan from the paper scale's settings, worded for table.md's header: what
differs in each method's resolved training config (those every method shares first) and in the
evaluation (the paper protocol's grid and test images, the worst case's and the adaptive
attacks' budgets, Defense-GAN's projection)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from er_art.reproduce.presets import PAPER, TABLE1_EPS

if TYPE_CHECKING:
    from er_art.reproduce.plan import MethodPlan, Plan
    from er_art.training.run import TrainingConfig


def _count(n: int | None, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _fmt(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _config_differences(cfg: TrainingConfig, ref: TrainingConfig, word: str) -> list[str]:
    """How ``cfg`` differs from ``ref`` in what changes the trained model, as phrases."""
    out = []
    if cfg.arch != ref.arch:
        out.append(f"architecture {cfg.arch} ({word}: {ref.arch})")
    if cfg.limit != ref.limit:
        out.append(
            f"the first {_fmt(cfg.limit)} training images"
            + (f" ({word}: all)" if ref.limit is None else f" ({word}: {_fmt(ref.limit)})")
        )
    if cfg.epochs != ref.epochs:
        out.append(f"{_count(cfg.epochs, 'epoch')} ({word}: {ref.epochs})")
    if (cfg.max_iter, cfg.eps_step, cfg.eps) != (ref.max_iter, ref.eps_step, ref.eps):
        out.append(
            f"training PGD {cfg.max_iter} steps of {_fmt(cfg.eps_step)} at eps {_fmt(cfg.eps)} "
            f"({word}: {ref.max_iter} of {_fmt(ref.eps_step)} at {_fmt(ref.eps)})"
        )
    if cfg.eps_warmup != ref.eps_warmup:
        out.append(
            f"training eps warmed up linearly over {_count(cfg.eps_warmup, 'epoch')} "
            f"({word}: {_count(ref.eps_warmup, 'epoch')})"
        )
    for name in ("batch_size", "lr", "embedding_dim", "prior", "use_predictions", "adv_ratio"):
        mine, theirs = getattr(cfg, name), getattr(ref, name)
        if mine != theirs:
            out.append(f"{name.replace('_', ' ')} {_fmt(mine)} ({word}: {_fmt(theirs)})")
    mine_o, ref_o = cfg.arch_options or {}, ref.arch_options or {}
    if cfg.arch == ref.arch:
        for key in sorted(set(mine_o) | set(ref_o)):
            if mine_o.get(key) != ref_o.get(key):
                out.append(f"{key} {_fmt(mine_o.get(key))} ({word}: {_fmt(ref_o.get(key))})")
    return out


def training_deviations(
    methods: list[MethodPlan], overrides: dict[str, Any], word: str = "paper"
) -> list[str]:
    """Training differences from the paper scale: those every method shares first, then each
    method's own."""
    per = {m.name: _config_differences(m.config, m.reference, word) for m in methods if m.reference}
    lines = []
    if overrides:
        forced = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(overrides.items()))
        lines.append(f"training options forced on every method: {forced}")
    shared = [d for d in next(iter(per.values()), []) if all(d in ds for ds in per.values())]
    if shared and len(per) > 1:
        lines.append("training, every method: " + "; ".join(shared))
    for name, diffs in per.items():
        own = [d for d in diffs if d not in shared or len(per) == 1]
        if own:
            lines.append(f"training, {name}: " + "; ".join(own))
    return lines


def _grid(values: list[float] | tuple[float, ...]) -> str:
    values = [float(v) for v in values]
    if len(values) > 3:
        steps = {round(b - a, 9) for a, b in zip(values, values[1:], strict=False)}
        if len(steps) == 1:
            return f"{values[0]:g}..{values[-1]:g} step {steps.pop():g}"
    return ", ".join(f"{v:g}" for v in values)


def _n(value: int | None, n_test: int) -> str:
    return f"all {n_test:,}" if value is None or value >= n_test else f"{value:,}"


def evaluation_deviations(plan: Plan, n_test: int, word: str = "paper") -> list[str]:
    """Evaluation differences from the paper scale (its protocol's grid, n, attack budgets);
    ``word`` names the reference of the paper's own settings ("paper", or "full scale")."""
    at = "paper scale" if word == "paper" else word  # er-art's own protocols at full scale
    s, p, spec = plan.scale, PAPER, plan.spec
    lines = []
    if tuple(plan.paper_eps) != tuple(float(e) for e in spec.eps_grid):
        lines.append(
            f"paper protocol: eps {_grid(plan.paper_eps)} ({word}: {_grid(spec.eps_grid)})"
        )
    if (s.n_paper or n_test) < n_test:
        lines.append(f"paper protocol: the first {_n(s.n_paper, n_test)} test images ({word}: all)")
    if s.paper_max_iter is not None and s.paper_max_iter != spec.max_iter:
        lines.append(f"paper protocol: PGD {s.paper_max_iter} steps ({word}: {spec.max_iter})")
    if plan.cw and (s.n_cw != p.n_cw or dict(s.cw_params) != dict(p.cw_params)):
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in s.cw_params.items()) or "defaults"
        lines.append(
            f"Table 2 C&W (cw-fast, {params}): {_n(s.n_cw, n_test)} test images "
            f"({at}: {_n(p.n_cw, n_test)})"
        )
    worst = []
    if plan.worst_eps != [float(e) for e in TABLE1_EPS.get(plan.dataset, plan.worst_eps)]:
        worst.append(f"eps {_grid(plan.worst_eps)}")
    narrowed = [mp.name for mp in plan.methods if plan.worst_eps_for(mp) != plan.worst_eps]
    if narrowed:
        eps = plan.worst_eps_for(plan.method(narrowed[0]))
        worst.append(f"the min-max methods ({', '.join(narrowed)}) at eps {_grid(eps)} only")
    if s.n_worst != p.n_worst:
        worst.append(f"{_n(s.n_worst, n_test)} test images ({at}: {_n(p.n_worst, n_test)})")
    if s.n_worst_key is not None and s.n_worst_key != s.n_worst:
        keys = ", ".join(m.name for m in plan.methods if m.method.key) or "none here"
        worst.append(f"{_n(s.n_worst_key, n_test)} for the key comparison ({keys})")
    if s.suite_restarts is not None:
        worst.append(
            f"{_count(s.suite_restarts, 'restart')} per attack "
            f"(converged defaults: {_defaults('restarts')})"
        )
    if s.suite_max_iter is not None:
        worst.append(
            f"{s.suite_max_iter} iterations per attack "
            f"(converged defaults: {_defaults('max_iter')})"
        )
    if s.square_queries != p.square_queries or s.square_restarts is not None:
        restarts = s.square_restarts or s.suite_restarts
        worst.append(
            f"Square {s.square_queries} queries"
            + (f", {_count(restarts, 'restart')}" if restarts else "")
            + f" ({at}: {p.square_queries})"
        )
    if not s.checks:
        worst.append("no sanity checks")
    if worst:
        lines.append("worst case (er-art's fast suite): " + "; ".join(worst))
    kinds = {m.method.adaptive for m in plan.methods} - {None}
    adaptive = []
    if kinds and s.n_adaptive != p.n_adaptive:
        adaptive.append(f"{_n(s.n_adaptive, n_test)} test images ({at}: "
                        f"{_n(p.n_adaptive, n_test)})")  # fmt: skip
    if "eot" in kinds and s.eot != p.eot:
        adaptive.append(f"RSE EOT over {s.eot} passes ({at}: {p.eot})")
    if kinds and s.adaptive_restarts is not None:
        adaptive.append(
            f"PGD {_count(s.adaptive_restarts, 'restart')} (converged default: "
            f"{_default('pgd', 'restarts')})"
        )
    if adaptive:
        lines.append("adaptive attacks: " + "; ".join(adaptive))
    if "defense-gan" in kinds:
        mine, theirs = dict(s.defense_gan), dict(p.defense_gan)
        if mine != theirs:
            lines.append(
                f"Defense-GAN projection: L = {mine.get('projection_steps')} steps from "
                f"R = {mine.get('restarts')} starts ({word}: L = {theirs.get('projection_steps')}, "
                f"R = {theirs.get('restarts')})"
            )
        if s.n_defense_gan is not None and s.n_defense_gan < n_test:
            lines.append(
                f"Defense-GAN: at most {s.n_defense_gan:,} test images under every protocol "
                "(its projection is expensive)"
            )
    return lines


def _default(attack: str, what: str) -> int:
    """An attack plugin's own default restarts (``what="restarts"``) or iterations."""
    from er_art.attacks import get_attack

    spec = get_attack(attack)
    param = spec.restarts_param if what == "restarts" else spec.max_iter_param
    return int(spec.defaults[param])


def _defaults(what: str) -> str:
    """``PGD 128, APGD 64``: the converged defaults the worst case's budget is cut from."""
    return f"PGD {_default('pgd', what)}, APGD {_default('apgd-ce', what)}"
