"""``reports/ablation.md``: the ablation report (:mod:`danceba.ablation_report`) as readable tables.

Per protocol, one table of the ``model`` row, a line per variant, with the paper's metrics, the BAS
excess over chance, phase locking, and the sham-music model's BAS excess beside them (the "does it
listen" control: it should fall to 0 when the music is someone else's). Cells are ``mean ± std
[95 % interval]`` over seeds; a second table gives min – max. Then the paper's Table 2 beside ours, the
variants' overrides and the status of every run. Every other metric is in ``ablation.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from danceba.ablation import PAPER_TABLE2, PaperRow
from danceba.ablation_report import metric_stats, protocols
from danceba.sweep import decimals_for

MODEL_ROW = "model"
SHAM_ROW = "model_sham_music"
PAPER_PROTOCOL = "bailando"  # the protocol that reproduces the published metric code
# (result row, metric, column heading) of the main table
KEY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (MODEL_ROW, "fid_k", "FIDk ↓"),
    (MODEL_ROW, "fid_g", "FIDg ↓"),
    (MODEL_ROW, "div_k", "Divk ↑"),
    (MODEL_ROW, "div_g", "Divg ↑"),
    (MODEL_ROW, "bas", "BAS ↑"),
    (MODEL_ROW, "bas_excess", "BAS excess ↑"),
    (MODEL_ROW, "phase_lock_r", "phase lock R ↑"),
    (SHAM_ROW, "bas_excess", "sham-music BAS excess"),
)
# "Does it listen, does it move, is it plausible" (the rhythm issue's targets): the teacher-forced CE gap
# between another song's music and the real one, and the model row beside its references.
LISTEN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("train_gpt.final_val_ce", "val CE (nats)"),
    ("train_gpt.final_val_ce_sham_gap", "CE gap, sham − real ↑"),
    ("{protocol}.model.fid_k", "FIDk ↓"),
    ("{protocol}.reconstruction.fid_k", "recon FIDk"),
    ("{protocol}.model.mean_joint_speed", "joint speed (m/s)"),
    ("{protocol}.ground_truth.mean_joint_speed", "GT speed"),
    ("{protocol}.model.pfc", "PFC ↓"),
    ("{protocol}.random_codes.pfc", "random-codes PFC"),
)
MISSING = "—"
SHAM_NOTE = (
    "Sham music: the same model fed another song's music. Its BAS excess should fall to ≈ 0 if the model "
    "listens; a variant whose sham excess matches its own excess is not following the music."
)

LISTEN_NOTE = (
    "CE gap: teacher-forced validation cross-entropy with another song's music minus with the real music "
    "(per code stream, nats; > 0 means the music it hears helps it predict the dance). FIDk beside the "
    "VQ-VAE reconstruction's (the token route's ceiling), joint speed beside the ground truth's, the "
    "physical foot-contact score (PFC, lower is better) beside random codes'."
)


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1 h 02 min 05 s``, ``65`` -> ``1 min 05 s``, ``4.2`` -> ``4.2 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def format_number(value: float | None, decimals: int) -> str:
    """``value`` with ``decimals``; ``—`` for None or non-finite."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{decimals}f}"


def interval_cell(stats: Mapping[str, Any] | None, significant: int = 4) -> str:
    """``mean ± std [ci_low, ci_high]`` (decimals giving the mean ``significant`` digits); one seed: ``mean``."""
    if not stats or not stats["n"]:
        return MISSING
    decimals = decimals_for(stats["mean"], significant)
    cell = format_number(stats["mean"], decimals)
    if stats.get("std") is not None:
        cell += f" ± {format_number(stats['std'], decimals)}"
    if stats.get("ci_low") is not None:
        cell += f" [{format_number(stats['ci_low'], decimals)}, {format_number(stats['ci_high'], decimals)}]"
    return cell


def range_cell(stats: Mapping[str, Any] | None, significant: int = 4) -> str:
    """``min – max`` over seeds."""
    if not stats or not stats["n"]:
        return MISSING
    decimals = decimals_for(stats["mean"], significant)
    return f"{format_number(stats['min'], decimals)} – {format_number(stats['max'], decimals)}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines (``|`` in cells escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


def key_metric_table(report: Mapping[str, Any], protocol: str, cell: Any = interval_cell) -> list[str]:
    """One line per variant: ``n`` ok seeds and :data:`KEY_COLUMNS` of ``protocol`` through ``cell``."""
    header = ["variant", "n", *(heading for _, _, heading in KEY_COLUMNS)]
    rows = []
    for name, part in report["variants"].items():
        cells = [
            cell(metric_stats(report, name, f"{protocol}.{row}.{metric}")) for row, metric, _ in KEY_COLUMNS
        ]
        rows.append([name, str(part["n_ok"]), *cells])
    return markdown_table(header, rows)


def listen_table(report: Mapping[str, Any], protocol: str) -> list[str]:
    """One line per variant: :data:`LISTEN_COLUMNS` (``mean ± std [interval]`` over seeds)."""
    header = ["variant", "n", *(heading for _, heading in LISTEN_COLUMNS)]
    rows = [
        [
            name,
            str(part["n_ok"]),
            *(
                interval_cell(metric_stats(report, name, path.format(protocol=protocol)))
                for path, _ in LISTEN_COLUMNS
            ),
        ]
        for name, part in report["variants"].items()
    ]
    return markdown_table(header, rows)


def paper_protocol(report: Mapping[str, Any]) -> str | None:
    """:data:`PAPER_PROTOCOL` if the runs have it, else their first protocol (None without results)."""
    found = protocols(report)
    return PAPER_PROTOCOL if PAPER_PROTOCOL in found else (found[0] if found else None)


def paper_table(
    report: Mapping[str, Any], protocol: str, paper: Sequence[PaperRow] = PAPER_TABLE2
) -> list[str]:
    """The paper's Table 2 (FIDk, Divk, BAS) beside our mean ± std of the corresponding variant and row."""
    header = ["paper (AIST++)", "FIDk", "Divk", "BAS", "ours: variant / row", "FIDk", "Divk", "BAS"]
    rows = []
    for entry in paper:
        ours = [
            interval_cell(metric_stats(report, entry.variant, f"{protocol}.{entry.row}.{metric}"))
            for metric in ("fid_k", "div_k", "bas")
        ]
        theirs = [format_number(entry.fid_k, 2), format_number(entry.div_k, 2), format_number(entry.bas, 4)]
        rows.append([entry.label, *theirs, f"{entry.variant} / {entry.row}", *ours])
    return markdown_table(header, rows)


def variants_table(report: Mapping[str, Any]) -> list[str]:
    """One line per variant: its ``-S`` overrides, what it is, ok seeds of requested."""
    rows = [
        [
            name,
            ", ".join(f"`{o}`" for o in part["overrides"]) or "(none: params.yaml)",
            part["description"],
            f"{part['n_ok']} / {len(part['seeds'])}",
        ]
        for name, part in report["variants"].items()
    ]
    return markdown_table(["variant", "overrides", "what", "ok seeds"], rows)


def runs_table(report: Mapping[str, Any]) -> list[str]:
    """One line per (variant, seed): status, attempts, time, experiment, error."""
    rows = []
    for name, part in report["variants"].items():
        for seed, entry in part["seeds"].items():
            error = str(entry.get("error", "")).replace("\n", " ")[:200]
            seconds = entry.get("seconds")
            time = format_duration(seconds) if seconds else ""
            attempts = str(entry.get("attempts", ""))
            rows.append([name, seed, entry["status"], attempts, time, entry.get("experiment", ""), error])
    return markdown_table(["variant", "seed", "status", "attempts", "time", "experiment", "error"], rows)


def data_note(report: Mapping[str, Any]) -> str:
    """Which data the numbers are from, and what that means for the comparison with the paper."""
    if report.get("data_source") == "mini":
        return (
            "Ours: `data.source: mini`, the embedded mini dataset (synthetic music and dances, tiny models "
            "trained on CPU). Not comparable with the paper's AIST++ numbers in absolute terms: compare the "
            "variants with each other, and the directions with the paper's."
        )
    source = report.get("data_source") or "unknown"
    return (
        f"Ours: `data.source: {source}` with this params.yaml; the paper's numbers come from its own "
        "training runs and sizes."
    )


def format_ablation_markdown(report: Mapping[str, Any]) -> str:
    """The whole ``ablation.md``."""
    seeds = ", ".join(str(s) for s in report["seeds"])
    interval = report["interval"]
    lines = [
        f"# Ablation: {report['n_ok']} of {report['n_runs']} runs ok "
        f"({len(report['variants'])} variants × {len(report['seeds'])} seeds: {seeds})",
        "",
        f"Wall time: {format_duration(report['wall_time_s'])} (this invocation: upstream stages and the runs "
        f"it did); recorded time of all runs: {format_duration(report['run_seconds'])}.",
        "",
        f"Cells: mean ± sample std over the ok seeds [{interval['level']:.0%} interval of the mean: "
        f"mean ± t({(1 + interval['level']) / 2:g}, n − 1) · std / √n, a Student-t interval over seeds]. "
        "Every other row and metric, and the per-seed bootstrap intervals over pieces, are in "
        "`ablation.json`.",
        "",
        *variants_table(report),
        "",
    ]
    protocol_names = protocols(report)
    if not protocol_names:
        return "\n".join([*lines, "No finished runs: nothing to summarise.", "", *runs_table(report), ""])
    for protocol in protocol_names:
        lines += [f"## `{protocol}` protocol: the `{MODEL_ROW}` row", "", *key_metric_table(report, protocol)]
        lines += ["", SHAM_NOTE]
        lines += ["", "Min – max over seeds:", "", *key_metric_table(report, protocol, range_cell), ""]
    protocol = paper_protocol(report)
    lines += [f"## Does it listen, does it move (`{protocol}` protocol)", "", LISTEN_NOTE, ""]
    lines += [*listen_table(report, protocol), ""]
    lines += [f"## The paper's Table 2 beside ours (`{protocol}` protocol)", "", data_note(report), ""]
    lines += [*paper_table(report, protocol), "", "## Runs", "", *runs_table(report), ""]
    return "\n".join(lines)
