"""``python -m audioemb``: the command line."""

from audioemb.cli import main

main()
