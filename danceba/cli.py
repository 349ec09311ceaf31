"""The ``danceba`` command line: dance to any song, score a folder of dances, convert official weights.

::

    danceba generate SONG [SONG ...] --out DIR [--gpt CKPT] [--vqvae CKPT] [--format npz,bvh,mp4]
                     [--params params.yaml] [--seed N] [--temperature T] [--top-k K] [--greedy | --sample]
                     [--repeat-penalty P] [--genre gBR]
                     [--genre-guidance W] [--genre-guidance-steps N] [--music-guidance W] [--tokens T.parquet]
    danceba evaluate PRED_DIR [--protocol bailando --protocol corrected] [--json OUT.json]
    danceba convert-checkpoint OFFICIAL.pt OUT.pt --stack danceba|bailando [--config-from params.yaml]
    danceba lineage RUN_ID [--project-root DIR]
    danceba view [PATH ...] [--music PATH] [--ground-truth data/joints.parquet] [--port N] [--open]
    danceba --version

Bad input (an unreadable, silent or too short song, a checkpoint of the wrong kind or architecture, a
prediction folder that is not in the documented format) ends with one line
``danceba: error: <file>: <problem>`` on stderr and exit status 2, and nothing written: ``generate``
checks every song and both checkpoints before it writes, writes each file atomically, and removes the
files it wrote if a later one fails. Library code lives in ``danceba.generation.user_songs`` and the modules it names;
this file parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

from danceba import __version__
from danceba.generation.config import PRECISIONS, SamplingConfig
from danceba.nested import file_digest

DEFAULT_GPT = Path("data/models/gpt.pt")
DEFAULT_VQVAE = Path("data/models/vqvae.pt")
DEFAULT_TOKENS = Path("data/tokens.parquet")
DEFAULT_GT_FEATURES = Path("data/gt_features.parquet")
DEFAULT_MUSIC_60FPS = Path("data/music_features_60fps.parquet")
EXIT_INPUT_ERROR = 2


class UsageError(ValueError):
    """A bad argument or input; printed as one line, exit status 2."""


def _is_input_error(error: BaseException) -> bool:
    """Errors that mean bad input (named file, wrong kind, ...), as opposed to bugs."""
    from danceba.train.checkpoint import CheckpointError

    return isinstance(error, ValueError | OSError | KeyError | CheckpointError)


def _note(message: str) -> None:
    """One line on stderr, above any progress bar being drawn (never on its line)."""
    from tqdm import tqdm

    tqdm.write(f"danceba: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------


def _formats(text: str) -> tuple[str, ...]:
    from danceba.generation.user_songs import parse_formats

    try:
        return parse_formats(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _first_codes(args: argparse.Namespace, vocab: int) -> tuple[int, int]:
    from danceba.generation.user_songs import first_codes

    tokens = args.tokens if args.tokens is not None else DEFAULT_TOKENS
    if tokens.is_file():
        genre, codes = first_codes(tokens, args.genre, vocab)
        _note(f"first codes {codes} of genre {genre} (from {tokens})")
        return codes
    if args.tokens is not None or args.genre is not None:
        raise UsageError(f"{tokens}: no such tokens table (needed for the first codes of a genre)")
    _note(f"warning: no tokens table at {tokens}; every dance starts from codes (0, 0)")
    return 0, 0


def _conditioned_genre(genre: str | None, conditioned: bool) -> str | None:
    """The genre the GPT is asked to dance (None: any); says what ``--genre`` does with this model."""
    from danceba.genres import genre_label

    if genre is not None:
        try:
            genre_label(genre)
        except ValueError as error:
            raise UsageError(f"--genre: {error}") from error
    if not conditioned:
        if genre is not None:
            _note(f"note: this GPT has no genre conditioning; --genre {genre} only picks the first codes")
        return None
    _note(f"genre-conditioned GPT: dancing {genre or 'any genre'}")
    return genre


# Every SamplingConfig field but decode has a flag of that name; an unset one comes from the params file.
SAMPLER_FLAGS = tuple(f.name for f in fields(SamplingConfig) if f.name != "decode")


def decoding_defaults(params: Path | None) -> tuple[SamplingConfig, str]:
    """The sampler settings ``generate`` starts from, and where they came from: the ``generate`` section
    of ``params`` (default: ``./params.yaml`` when it exists, the file that trained the project's
    models), else the reference sampler's (:class:`SamplingConfig`: greedy top-1). ``decode`` is
    not taken from the file: the CLI decodes ``cached`` unless told otherwise."""
    from danceba.config import load_params
    from danceba.configs import PARAMS_FILE

    path = params if params is not None else Path(PARAMS_FILE)
    if params is None and not path.is_file():
        return SamplingConfig(), "the reference sampler"

    return load_params(path).generate.sampling(), f"{path} (generate)"


def sampling_from_args(args: argparse.Namespace, decode: str) -> tuple[SamplingConfig, str]:
    """:func:`decoding_defaults` with every sampler flag given on the command line put over it."""
    base, source = decoding_defaults(args.params)
    given = {name: getattr(args, name) for name in SAMPLER_FLAGS if getattr(args, name) is not None}
    if given.get("top_k") == 0:
        given["top_k"] = None  # --top-k 0: every code
    return replace(base, decode=decode, **given), source


def describe_sampling(sampling: SamplingConfig) -> str:
    """One line, e.g. ``sample top-k 5 T 1 seed 0, repeat penalty 0.5, music guidance 1, cached decoding, float32``."""
    if sampling.mode == "greedy":
        choice = "greedy"
    else:
        top_k = "all codes" if sampling.top_k is None else f"top-k {sampling.top_k}"
        choice = f"sample {top_k} T {sampling.temperature:g} seed {sampling.seed}"
    parts = [choice, f"repeat penalty {sampling.repeat_penalty:g}"]
    if sampling.music_guidance:
        parts.append(f"music guidance {sampling.music_guidance:g}")
    if sampling.genre_guidance:
        parts.append(f"genre guidance {sampling.genre_guidance:g}")
    return ", ".join([*parts, f"{sampling.decode} decoding", sampling.precision])


def run_generate(args: argparse.Namespace) -> int:
    from danceba.generation.dances import generate_dances
    from danceba.generation.user_songs import (
        check_output_names,
        load_models,
        match_music_width,
        read_song,
        to_generation_songs,
        write_dances,
    )

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"{args.out}: exists and is not a folder")
    songs = [read_song(path) for path in args.songs]
    check_output_names(songs)
    if "mp4" in args.format:
        from danceba.export.video import probe_media

        for song in songs:
            if probe_media(song.path)["audio_streams"] < 1:
                raise UsageError(f"{song.path}: ffmpeg finds no audio stream to put in the video")
    sampling, source = sampling_from_args(args, args.decode)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpt, vqvae = load_models(args.gpt, args.vqvae, device)
    if sampling.decode == "cached" and gpt.config.stack == "danceba" and gpt.config.pmmm == "single":
        _note("note: pmmm='single' supports only exact decoding; using --decode exact")
        sampling = replace(sampling, decode="exact")
    first = _first_codes(args, gpt.config.vocab_up)
    songs = match_music_width(songs, gpt.config.n_music)
    _note(f"{len(songs)} song(s) on {device}: {describe_sampling(sampling)} (defaults: {source})")
    genre = _conditioned_genre(args.genre, gpt.config.genre_conditioning)
    if sampling.genre_guidance > 0 and genre is None:
        _note("note: --genre-guidance needs a genre-conditioned GPT and a --genre; dancing without it")
    dances = generate_dances(gpt, vqvae, to_generation_songs(songs, first, genre), sampling, args.batch_size)

    for path in write_dances(args.out, songs, dances, args.format):
        print(path)
    return 0


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------


def run_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from danceba import tables
    from danceba.atomic import write_text_atomic
    from danceba.evaluate_config import EvaluateConfig
    from danceba.evaluation import (
        PROTOCOL_CARD_KEY,
        evaluation_report,
        gt_feature_sequences,
        read_dance_folder,
    )
    from danceba.metrics_markdown import markdown_table
    from danceba.protocol_card import protocol_card

    try:
        config = dataclasses.replace(
            EvaluateConfig(), protocols=tuple(dict.fromkeys(args.protocol or EvaluateConfig().protocols))
        )
    except ValueError as error:  # an unknown protocol name
        raise UsageError(str(error)) from error
    for path, what in ((args.gt_features, "ground-truth features"), (args.music_60fps, "60 fps music table")):
        if not path.is_file():
            raise UsageError(f"{path}: no such file ({what}; built by `dvc repro`)")
    if not args.pred_dir.is_dir():
        raise UsageError(f"{args.pred_dir}: not a folder of predictions")
    dances = read_dance_folder(args.pred_dir)
    known = set(tables.group_keys(args.music_60fps))
    for dance in dances:
        if dance.music_id not in known:
            raise UsageError(
                f"{args.pred_dir / (dance.name + '.npz')}: music_id {dance.music_id!r} is not in "
                f"{args.music_60fps} (its beats are needed for BAS)"
            )
    # The test-only FID reference: the ground truth of the predictions' own sequences, when they are known.
    with_features = gt_feature_sequences(args.gt_features)
    test_sequences = sorted({d.name for d in dances} & with_features)
    test_sequences = test_sequences if len(test_sequences) >= 2 else None
    rows = {"predictions": dances}
    report = evaluation_report(rows, args.gt_features, args.music_60fps, config, test_sequences)
    sizes = {"": len(with_features), **({"_testref": len(test_sequences)} if test_sequences else {})}
    card = protocol_card(config, rows, sizes)
    print(markdown_table(report, card))
    if args.json is not None:
        write_text_atomic(args.json, json.dumps({**report, PROTOCOL_CARD_KEY: card}, indent=2) + "\n")
        _note(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------------------------
# convert-checkpoint
# ----------------------------------------------------------------------------------------------


def read_official(path: Path):
    """The weights, training config and epoch of an official checkpoint (``danceba.official_checkpoint``:
    tensors, plain containers and the config's EasyDict as a plain mapping; anything else is refused)."""
    from danceba.official_checkpoint import read_official_checkpoint
    from danceba.train.checkpoint import CheckpointError

    try:
        return read_official_checkpoint(path)
    except CheckpointError as error:
        raise UsageError(str(error)) from error


def _gpt_config(stack: str, config_from: Path | None, faithful: bool, official=None):
    """The GPT to load the weights into: ``--config-from`` (a params.yaml or a YAML/JSON of GPTConfig
    fields), else the config saved in the official checkpoint, else the paper's defaults."""
    import yaml

    from danceba.models.gpt_config import GPTConfig
    from danceba.official_checkpoint import gpt_fields
    from danceba.strict_dataclass import build_dataclass
    from danceba.train.checkpoint import CheckpointError

    if config_from is None and official is not None and official.config is not None:
        where = f"{official.path}: config"
        try:
            mapping = gpt_fields(official.config, where)
        except CheckpointError as error:
            raise UsageError(str(error)) from error
        _note(f"GPT config from the checkpoint's structure_generate: {mapping}")
    elif config_from is None:
        return replace(GPTConfig(stack=stack), faithful=faithful)
    else:
        try:
            text = config_from.read_text(encoding="utf-8")
            mapping = json.loads(text) if config_from.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise UsageError(f"{config_from}: cannot read a YAML/JSON config ({error})") from error
        where = config_from.name
        if isinstance(mapping, dict) and "train_gpt" in mapping:  # a params.yaml
            mapping, where = (mapping["train_gpt"] or {}).get("model", {}), f"{where}: train_gpt.model"
        if not isinstance(mapping, dict):
            raise UsageError(f"{config_from}: expected a mapping of GPTConfig fields")
    config = build_dataclass(GPTConfig, {**mapping, "stack": stack}, where)
    return replace(config, faithful=True) if faithful else config


def run_convert(args: argparse.Namespace) -> int:
    from danceba.models.gpt import build_gpt
    from danceba.models.gpt_weights import official_state_dict
    from danceba.trainers.gpt import export_gpt

    if args.out.exists() and not args.force:
        raise UsageError(f"{args.out}: exists; pass --force to replace it")
    checkpoint = read_official(args.official)
    official = checkpoint.state_dict
    config = _gpt_config(args.stack, args.config_from, args.faithful, checkpoint)
    mapped = official_state_dict(official, args.stack)
    dropped = len(official) - len(mapped)
    model = build_gpt(config)
    try:
        result = model.load_state_dict(mapped, strict=False)
    except RuntimeError as error:  # shapes differ: another size or stack
        raise UsageError(
            f"{args.official}: weights do not fit the {args.stack} GPT of this config: {str(error)[:400]}"
        ) from error
    print(
        f"{args.official}: {len(mapped) - len(result.unexpected_keys)} tensors matched; "
        f"{dropped} official-only entries dropped (attention masks, unused ln_f / PRE linear1, bn1)"
    )
    for label, keys in (
        ("unexpected (in the file, not in the model; ignored)", result.unexpected_keys),
        ("missing (in the model, not in the file)", result.missing_keys),
    ):
        print(f"{label}: {len(keys)}")
        for key in keys:
            print(f"  {key}")
    if result.missing_keys and not args.allow_missing:
        raise UsageError(
            f"{args.official}: {len(result.missing_keys)} model weights missing from the file "
            f"(first: {result.missing_keys[0]}); nothing written (--allow-missing keeps their initial values)"
        )
    provenance = {
        "converted_from": str(args.official),
        "sha256": file_digest([args.official]),
        "stack": args.stack,
    }
    if checkpoint.epoch is not None:
        provenance["epoch"] = checkpoint.epoch
    metrics = {"missing_keys": len(result.missing_keys), "unexpected_keys": len(result.unexpected_keys)}
    export_gpt(args.out, model, config, metrics, provenance)
    print(f"wrote {args.out} ({model.num_parameters()} parameters, {args.stack} stack)")
    return 0


# ----------------------------------------------------------------------------------------------
# lineage
# ----------------------------------------------------------------------------------------------


def run_lineage(args: argparse.Namespace) -> int:
    from danceba.lineage import format_lineage, lineage

    links = lineage(args.run_id, args.project_root, against=args.against)
    print(format_lineage(links) if links else f"run {args.run_id}: no dvc.in / dvc.out tags")
    return 0


# ----------------------------------------------------------------------------------------------
# view
# ----------------------------------------------------------------------------------------------


def run_view(args: argparse.Namespace) -> int:
    """Serve the browser player on 127.0.0.1 until Ctrl-C (``danceba.viewer``)."""
    import signal
    import webbrowser

    from danceba import viewer

    paths = args.paths or ([] if args.ground_truth else viewer.default_paths())
    if not paths and args.ground_truth is None:
        raise UsageError(
            "nothing to show: name folders of .npz dances or .npz/.bvh files (no data/generated)"
        )
    catalog = viewer.Catalog(
        viewer.find_tracks(paths, args.ground_truth), viewer.music_search_paths(args.music)
    )
    viewer.check_player_installed()
    try:
        server = viewer.ViewerServer(catalog, args.port)
    except OSError as error:
        raise UsageError(f"127.0.0.1:{args.port}: cannot serve there ({error.strerror or error})") from error
    for warning in catalog.warnings():
        _note(f"warning: {warning}")
    labels = ", ".join(track.label for track in catalog.tracks)
    _note(f"{len(catalog.pieces())} piece(s) from {len(catalog.tracks)} track(s) ({labels}); Ctrl-C stops")
    print(server.url, flush=True)
    if args.open:
        webbrowser.open(server.url)
    # Ctrl-C stops it even when started from a script that ignores SIGINT (a background job does).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        _note("stopped")
    finally:
        server.server_close()
    return 0


# ----------------------------------------------------------------------------------------------
# parser and entry point
# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="danceba", description="Music to 3D dance (Danceba, ICCV 2025).")
    parser.add_argument("--version", action="version", version=f"danceba {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    default = " (default: %(default)s)"

    gen = commands.add_parser("generate", help="dance to any song (wav, flac, ogg, mp3)")
    gen.add_argument(
        "songs", nargs="+", type=Path, metavar="SONG", help="audio files; outputs keep each stem"
    )
    gen.add_argument("--out", required=True, type=Path, help="output folder (created)")
    gen.add_argument("--gpt", "--checkpoint", type=Path, default=DEFAULT_GPT, help="GPT export" + default)
    gen.add_argument("--vqvae", type=Path, default=DEFAULT_VQVAE, help="VQ-VAE export" + default)
    gen.add_argument("--format", type=_formats, default=("npz", "bvh"), help="npz,bvh,mp4 (default: npz,bvh)")
    gen.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the sampler's defaults are this file's generate section (default: ./params.yaml when it "
        "exists, else the official sampler: greedy top-1); the flags below override them",
    )
    from_params = " (default: from --params)"
    gen.add_argument("--seed", type=int, help="sampling seed" + from_params)
    gen.add_argument("--temperature", type=_positive_float, help="softmax temperature" + from_params)
    gen.add_argument(
        "--top-k", type=_non_negative_int, help="sample among the K likeliest codes, 0: all" + from_params
    )
    mode = gen.add_mutually_exclusive_group()
    mode.add_argument(
        "--greedy",
        dest="mode",
        action="store_const",
        const="greedy",
        help="top-1 codes, as the official sampler",
    )
    mode.add_argument(
        "--sample",
        dest="mode",
        action="store_const",
        const="sample",
        help="draw the codes (default: from --params)",
    )
    gen.add_argument(
        "--repeat-penalty",
        type=_non_negative_float,
        help="nats off the logit of the previous code, against a dancer that freezes" + from_params,
    )
    gen.add_argument(
        "--decode",
        choices=("cached", "exact"),
        default="cached",  # not from --params: the stage decodes exact (the reference); cached is ~5x faster
        help="decoder; exact is the official sampler and what the evaluated stage runs" + default,
    )
    gen.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="weights of the GPT's matrix products: bfloat16 is about 2x faster on CPU and changes some "
        "codes (bench/bench_decode_agreement.py)" + from_params,
    )
    gen.add_argument(
        "--genre",
        help="genre to dance, e.g. gBR: conditions a genre-conditioned GPT (default: any genre) and picks "
        "the first codes (default: the most common genre's)",
    )
    gen.add_argument(
        "--genre-guidance",
        type=_non_negative_float,
        help="classifier-free guidance towards --genre (a genre-conditioned GPT): logits cond + W (cond - "
        "any genre)" + from_params,
    )
    gen.add_argument(
        "--genre-guidance-steps",
        type=_non_negative_int,
        help="guide only the first N codes (0: every code)" + from_params,
    )
    gen.add_argument(
        "--music-guidance",
        type=_non_negative_float,
        help="classifier-free guidance towards the music: logits cond + W (cond - the training mean music)"
        + from_params,
    )
    gen.add_argument("--tokens", type=Path, default=None, help=f"tokens table (default: {DEFAULT_TOKENS})")
    gen.add_argument("--batch-size", type=_positive_int, default=16, help="songs per batch" + default)
    gen.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    gen.set_defaults(run=run_generate)

    ev = commands.add_parser("evaluate", help="FIDk, FIDg, Divk, Divg, BAS of a folder of .npz predictions")
    ev.add_argument(
        "pred_dir", type=Path, metavar="PRED_DIR", help="<name>.npz with joints (T,24,3), music_id"
    )
    ev.add_argument(
        "--protocol", action="append", help="bailando and/or corrected (repeatable; default both)"
    )
    ev.add_argument("--gt-features", type=Path, default=DEFAULT_GT_FEATURES, help="default: %(default)s")
    ev.add_argument("--music-60fps", type=Path, default=DEFAULT_MUSIC_60FPS, help="default: %(default)s")
    ev.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON")
    ev.set_defaults(run=run_evaluate)

    conv = commands.add_parser(
        "convert-checkpoint", help="official Danceba/Bailando GPT weights -> GPT export"
    )
    conv.add_argument("official", type=Path, metavar="OFFICIAL.pt")
    conv.add_argument("out", type=Path, metavar="OUT.pt")
    conv.add_argument("--stack", required=True, choices=("danceba", "bailando"))
    conv.add_argument(
        "--config-from",
        type=Path,
        default=None,
        help="params.yaml (train_gpt.model) or a YAML/JSON of GPTConfig fields (default: paper)",
    )
    conv.add_argument(
        "--faithful", action="store_true", help="GPTConfig.faithful=True (the release's quirks)"
    )
    conv.add_argument(
        "--allow-missing", action="store_true", help="write even when model weights are missing"
    )
    conv.add_argument("--force", action="store_true", help="replace OUT.pt if it exists")
    conv.set_defaults(run=run_convert)

    lin = commands.add_parser("lineage", help="the chain of MLflow runs and DVC hashes behind a run")
    lin.add_argument("run_id", metavar="RUN_ID")
    lin.add_argument("--project-root", type=Path, default=Path("."), help="default: %(default)s")
    lin.add_argument(
        "--against", choices=("workspace", "lock"), default="workspace", help="default: %(default)s"
    )
    lin.set_defaults(run=run_lineage)

    view = commands.add_parser("view", help="watch dances with their music in the browser (127.0.0.1)")
    view.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="folders of <piece>.npz (one track each, side by side), .npz or .bvh files "
        "(default: the folders of data/generated)",
    )
    view.add_argument(
        "--music",
        action="append",
        type=Path,
        metavar="PATH",
        help="audio file or folder, matched to a piece's music_id by stem (wav, mp3, ogg, flac, m4a; "
        "repeatable; data/raw/wavs and the dances' folders are searched after)",
    )
    view.add_argument(
        "--ground-truth", type=Path, default=None, help="joints table (data/joints.parquet) as one more track"
    )
    view.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    view.add_argument(
        "--open", action=argparse.BooleanOptionalAction, default=False, help="open the page in a browser"
    )
    view.set_defaults(run=run_view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 2 bad usage or input)."""
    from danceba.progress import configure_logging

    configure_logging(fmt="danceba: %(message)s", logger="danceba")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_INPUT_ERROR
    try:
        return args.run(args)
    except Exception as error:
        if not _is_input_error(error):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"danceba: error: {message}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
