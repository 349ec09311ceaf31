"""Stage ``fetch``: materialise the raw dataset in the AIST++ layout under ``--out``.

``data.source: mini`` generates the embedded mini dataset (no network); ``data.source: aistpp``
downloads the published archives into ``data.download_dir`` (resumable, checksummed, kept outside
DVC so a re-run does not download again) and extracts them. Either way the result is checked by the
same validator, so the later stages read both through one code path.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from danceba.config import Params
from danceba.data import aistpp, download, mini
from danceba.data.data_config import DataConfig
from pipelines.stage import exit_with, log, run_stage, stage_parser, tracked


def fetch_dataset(config: DataConfig, out: Path) -> None:
    """Write the dataset selected by ``config.source`` into ``out`` and validate its layout."""
    if config.source == "mini":
        summary = mini.write_mini_dataset(out, config.mini)
        log.info(
            "mini dataset: %d music, %d sequences (train %d, val %d, test %d, ignored %d)",
            len(summary.musics),
            len(summary.sequences),
            len(summary.train),
            len(summary.val),
            len(summary.test),
            len(summary.ignored),
        )
    else:
        download.fetch_aistpp(
            download_dir=Path(config.download_dir),
            target_root=out,
            annotations_url=config.annotations_url,
            music_url=config.music_url,
            annotations_sha256=config.annotations_sha256 or None,
            music_sha256=config.music_sha256 or None,
        )
    aistpp.validate_layout(aistpp.AistppLayout(out))


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the AIST++ layout into")

    def body(args: argparse.Namespace, params: Params) -> None:
        config = params.data
        with tracked("fetch", args, params, config, inputs=[], outputs=[args.out]):
            fetch_dataset(config, args.out)

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    exit_with(main())
