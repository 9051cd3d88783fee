"""``python -m audioemb.train RECIPE ...``: the same as ``audioemb train``; what ``torchrun`` starts per rank."""

from audioemb.cli.train import main

if __name__ == "__main__":
    main()
