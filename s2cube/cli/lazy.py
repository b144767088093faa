"""Commands of optional extras, registered explicitly and imported only when they run.

A command whose dependency is missing says which extra to install; any other import error
(a bug in s2cube) surfaces as it is: no command is ever dropped silently.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import MissingDependencyError

__all__ = ["OPTIONAL_COMMANDS", "LazyCommand"]

OPTIONAL_COMMANDS = {
    "train": ("s2cube.models.cli", "train", "ml", "Train the cloud U-net or the haze CNN."),
    "serve": ("s2cube.serve.cli", "serve", "serve", "Serve a store over WMTS/XYZ + a web map."),
    "overviews": ("s2cube.serve.cli", "overviews", "serve", "(Re)build a store's overviews."),
    "chips": ("s2cube.chips", "chips_command", "all", "Cut 256x256 GeoTIFF chips + an index."),
    "figures": ("s2cube.tools.figures", "figures", "all", "Side-by-side PNGs: blending, tones."),
    "export": ("s2cube.cli.export", "export", "all", "Export a bbox as a Cloud-Optimized GeoTIFF."),
    "verify": (
        "s2cube.cli.verify",
        "verify",
        "all",
        "Re-read every finished cell against its checksums and record.",
    ),
    "landcover": (
        "s2cube.cli.landcover",
        "landcover",
        "ml",
        "Land cover (Dynamic World or the three U-nets) into a store.",
    ),
    "superres": (
        "s2cube.cli.superres",
        "superres",
        "ml",
        "Super-resolve a store's cells into STORE/superres/x<scale> (SRResNet).",
    ),
}


class LazyCommand(click.Command):
    """Stands for an optional command until it is run (its module is imported then)."""

    def __init__(self, name: str, module: str, attr: str, extra: str, summary: str) -> None:
        # --help and every other argument go to the real command once it is loaded
        super().__init__(
            name,
            help=summary,
            add_help_option=False,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        )
        self.target = (module, attr, extra)

    def load(self) -> click.Command:
        import importlib

        module, attr, extra = self.target
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "s2cube":
                raise  # our own module is missing: a bug, not a missing extra
            raise MissingDependencyError(
                f"`s2cube {self.name}` needs {exc.name!r}, which is not installed; install it "
                f"with: pip install 's2cube[{extra}]'"
            ) from exc
        cmd = getattr(mod, attr)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{module}:{attr} is not a click command")
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        cmd = self.load()
        args = [*ctx.args]
        with cmd.make_context(self.name, args, parent=ctx.parent) as sub:
            return cmd.invoke(sub)
