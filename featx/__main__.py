"""``python -m featx`` runs the command line."""
from featx.cli import main

if __name__ == "__main__":
    main(prog_name="featx")
