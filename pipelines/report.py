"""Stage ``report``: one HTML file to open from disk, the dances in the player beside the metrics.

``reports/report.html`` (``danceba.html_report``): the browser player of ``danceba view``, with its
three.js code, a few pieces (ground truth and ``report.rows`` of ``data/generated``, one piece per song)
and their music written into the page, over the evaluate stage's ``reports/metrics.md``. No network, no
file beside it: double-click it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from danceba.config import Params
from danceba.html_report import write_report
from pipelines.stage import exit_with, log, run_stage, stage_parser, tracked


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    for name in ("--metrics-md", "--generated", "--joints", "--raw", "--out"):
        parser.add_argument(name, required=True, type=Path)

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.report
        inputs = [args.metrics_md, args.generated, args.joints, args.raw]
        with tracked("report", args, params, config, inputs=inputs, outputs=[args.out]) as run:
            written = write_report(
                args.out, args.metrics_md, args.generated, config, args.joints, [args.raw / "wavs"]
            )
            if not written["player"]:
                log.warning("three.js is not installed (make setup runs npm ci): the report has no player")
            log.info(
                "wrote %s (%.1f MB; pieces %s)",
                args.out,
                written["bytes"] / 1e6,
                ", ".join(written["pieces"]),
            )
            run.log_metrics({"report_megabytes": written["bytes"] / 1e6})
            run.log_artifact(args.out)

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
