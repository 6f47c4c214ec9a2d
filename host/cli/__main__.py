"""CLI layer: `python -m host.cli`, the same command as the `plugbox` console script."""

from . import main

main()
