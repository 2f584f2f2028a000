"""What the attack and evaluate commands show and write: tables, check lines, result files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import typer


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["max_eval=10", "square.max_iter=5"]`` -> ``{"max_eval": 10, "square.max_iter": 5}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"Bad --param {item!r}; accepted: NAME=VALUE, e.g. max_eval=1000 or "
                "square.p_init=0.5."
            )
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def split_params(params: dict[str, Any], methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per-method parameters: ``method.name=value`` goes to that method, a bare ``name`` to all."""
    per: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for key, value in params.items():
        method, dot, name = key.rpartition(".")
        if not dot:
            for m in methods:
                per[m][name] = value
        elif method in per:
            per[method][name] = value
        else:
            raise ValueError(
                f"--param {key}: {method!r} is not one of the attacks run ({', '.join(methods)})."
            )
    return per


def owned_option(command: str, spec: Any, name: str, suite: bool = False) -> str | None:
    """The option of ``command`` (``"attack"`` or ``"evaluate"``) that sets ART parameter ``name``
    of attack ``spec``, or None when only ``--param`` sets it. ``suite``: the attack runs in a
    suite (``attack --method all``, ``evaluate``), where ``--max-iter`` and ``--restarts`` reach
    the white-box iterative attacks only and Square's queries are ``--square-iter``'s (evaluate)
    or ``square.max_iter``'s (attack --method all)."""
    one = "" if command == "evaluate" or not suite else " (with one --method)"
    if name == "eps":
        return "--eps"
    if name == "batch_size":
        return "--batch-size"
    if name == "targeted":
        return (
            "er-art attack --method NAME --targeted"
            if command == "evaluate"
            else f"--targeted{one}"
        )
    if name == "eps_step":
        return None if command == "evaluate" else f"--eps-step{one}"
    if name in ("max_iter", spec.max_iter_param):
        if not suite:
            return "--max-iter"
        if spec.name == "square":
            return "--square-iter" if command == "evaluate" else None
        return "--max-iter" if spec.threat == "white-box" and spec.iterative else None
    if name in ("restarts", spec.restarts_param):
        return "--restarts" if not suite or spec.iterative else None
    return None


def check_params(
    params: dict[str, Any], command: str, methods: list[str], suite: bool = False
) -> None:
    """Refuse, before any work, a ``--param`` key that an option of ``command`` sets (one
    sentence naming the key and that option), that no attack it names takes (one sentence
    listing the keys ``--param`` may set, which leaves out those the options own), or a value
    of another type than the parameter's default (``max_eval=abc``).

    :param methods: the attacks run (``split_params`` gives each its keys).
    :param suite: see :func:`owned_option`.
    """
    from er_art.attacks import get_attack

    for method, own in split_params(params, methods).items():
        spec = get_attack(method)
        for name in own:
            key = next((k for k in (f"{method}.{name}", name) if k in params), name)
            option = owned_option(command, spec, name, suite)
            if option is not None and name == "targeted" and command == "evaluate":
                raise ValueError(
                    f"--param {key}: evaluate runs untargeted attacks (apgd-t and fab-t pick "
                    f"their own targets); use {option} for a targeted attack."
                )
            if option is not None:
                raise ValueError(f"--param {key} sets what {option} sets; use {option} instead.")
            accepted = [n for n in spec.defaults if owned_option(command, spec, n, suite) is None]
            if (
                command == "evaluate"
                and spec.budgeted
                and (spec.eps_step_rule is not None or "eps_step" in spec.defaults)
            ):
                accepted.append("eps_step")
            if name not in accepted:
                raise ValueError(
                    f"--param {key}: attack {spec.name!r} has no parameter {name!r} that --param "
                    f"may set; accepted: {', '.join(sorted(set(accepted))) or 'none'}."
                )
            kind = _kind_of(spec.defaults.get(name))
            if kind is not None and not _is_kind(own[name], kind):
                raise ValueError(
                    f"--param {key}={own[name]!r}: attack {spec.name!r} takes {kind} for {name} "
                    f"(default {spec.defaults[name]!r})."
                )


def _kind_of(default: Any) -> str | None:
    """What a parameter whose default is ``default`` takes (None: unknown, e.g. a None default)."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    return None


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "true or false":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "an integer":
        return isinstance(value, int)
    if kind == "a number":
        return isinstance(value, (int, float))
    return isinstance(value, str)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if pct else f"{value:.4g}"


def print_records(records: list[dict[str, Any]], title: str, footer: str | None = None) -> None:
    """A rich table: one row per (eps, method); ``footer`` is printed as the table's last line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "eps",
        "method",
        "clean %",
        "robust %",
        "success %",
        "mean pert",
        "max pert",
        "norm",
        "time s",
    ):
        table.add_column(col, justify="left" if col in ("method", "norm") else "right")
    for r in records:
        style = "bold" if r["method"] == "worst-case" else None
        table.add_row(
            f"{r['eps']:g}",
            r["method"],
            _fmt(r["clean_accuracy"], True),
            _fmt(r["robust_accuracy"], True),
            _fmt(r["success_rate"], True),
            _fmt(r["mean_perturbation"]),
            _fmt(r["max_perturbation"]),
            r["norm"],
            f"{r['time_s']:.1f}",
            style=style,
        )
    console = Console()
    if not console.is_terminal:  # files and pipes: do not squeeze the table into 80 columns
        console = Console(width=140)
    console.print(table)
    if footer:  # one unbroken line under the table
        typer.echo(footer)


CHECK_COLOURS = {"PASS": typer.colors.GREEN, "FAIL": typer.colors.RED, "UNINFORMATIVE": "yellow"}


def print_checks(checks: list[Any], title: str) -> None:
    """PASS / FAIL / UNINFORMATIVE lines of the sanity checks, with their eps and numbers."""
    typer.echo(title)
    for c in checks:
        colour = CHECK_COLOURS.get(c.status)
        eps = c.values.get("eps")
        where = "" if eps is None else f" [eps={eps:g}]"
        typer.echo(
            "  " + typer.style(f"{c.status:<14}", fg=colour, bold=True) + f"{c.name}{where}: "
            f"{c.message}"
        )
        if c.warning:
            typer.echo(
                "        " + typer.style(f"warning: {c.warning}", fg=typer.colors.YELLOW), err=True
            )


def write_outputs(
    out: Path,
    records: list[dict[str, Any]],
    checks: list[dict[str, Any]] | None = None,
    plot: bool = False,
    title: str | None = None,
) -> list[Path]:
    """``results.json`` (a list of records), ``results.csv``, optionally ``checks.json`` and
    ``accuracy_vs_eps.png``."""
    from er_art.checkpoint import atomic_write
    from er_art.runs import write_json

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.csv"]
    write_json(out / "results.json", records)
    columns: list[str] = []
    for r in records:
        columns.extend(k for k in r if k not in columns)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for r in records:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()}
        )
    atomic_write(out / "results.csv", lambda tmp: Path(tmp).write_text(text.getvalue()))
    if checks is not None:
        write_json(out / "checks.json", checks)
        written.append(out / "checks.json")
    if plot:
        from er_art.plotting import plot_accuracy_vs_eps

        written.append(plot_accuracy_vs_eps(records, out / "accuracy_vs_eps.png", title=title))
    return written
