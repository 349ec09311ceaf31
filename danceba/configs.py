"""Named configurations: whole ``params.yaml`` files kept under ``configs/`` (``embedded``, ``paper``,
``scale``: the embedded default on a generated dataset of AIST++'s size).

``use_config("paper", root)`` validates ``root/configs/paper.yaml`` with the strict loader and then copies
it, byte for byte (comments included), over ``root/params.yaml`` in one atomic rename. A file that does
not load leaves ``params.yaml`` untouched. DVC then sees the changed parameters and reruns what depends
on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from danceba.atomic import write_bytes_atomic
from danceba.config import ConfigError, Params, load_params

CONFIG_DIR = "configs"
PARAMS_FILE = "params.yaml"


def config_path(name: str, root: str | Path = ".") -> Path:
    """``root/configs/<name>.yaml``; raises :class:`ConfigError` listing the choices when it is missing."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"config name: expected a plain name such as 'paper', got {name!r}")
    path = Path(root) / CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such configuration; available: {', '.join(available_configs(root)) or 'none'}"
        )
    return path


def available_configs(root: str | Path = ".") -> list[str]:
    """Names of the configurations under ``root/configs`` (``*.yaml`` without the suffix), sorted."""
    folder = Path(root) / CONFIG_DIR
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file()) if folder.is_dir() else []


def use_config(name: str, root: str | Path = ".") -> Params:
    """Validate ``root/configs/<name>.yaml`` and copy it over ``root/params.yaml`` atomically.

    Returns the loaded :class:`Params`. Raises :class:`ConfigError` (naming the file and the bad key)
    before anything is written when the file does not load.
    """
    source = config_path(name, root)
    params = load_params(source)
    write_bytes_atomic(Path(root) / PARAMS_FILE, source.read_bytes())
    return params


def current_config(root: str | Path = ".") -> str | None:
    """The name of the configuration ``root/params.yaml`` equals (same loaded values), or None."""
    params = load_params(Path(root) / PARAMS_FILE)
    for name in available_configs(root):
        try:
            if load_params(config_path(name, root)) == params:
                return name
        except ConfigError:
            continue
    return None


def main(argv: list[str] | None = None) -> None:
    """``python -m danceba.configs [NAME]``: list the configurations, or switch ``params.yaml`` to NAME."""
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="configuration to copy over params.yaml (omit to list)")
    parser.add_argument("--root", default=".", help="project root holding params.yaml and configs/")
    args = parser.parse_args(argv)
    if args.name is None:
        try:
            current = current_config(args.root)
        except ConfigError:
            current = None  # params.yaml itself does not load: list without a mark
        for name in available_configs(args.root):
            print(f"{'*' if name == current else ' '} {name}")
        return
    try:
        use_config(args.name, args.root)
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"params.yaml <- {CONFIG_DIR}/{args.name}.yaml")


if __name__ == "__main__":
    main()
