"""Run featx from a checkout without installing it: ``python cli.py --help``."""
from featx.cli import main

if __name__ == "__main__":
    main()
