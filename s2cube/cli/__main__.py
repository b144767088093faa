"""``python -m s2cube.cli``: the ``s2cube`` command."""

from s2cube.cli import main

main()
