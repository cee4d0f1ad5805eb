"""`python -m pipeline` runs the same Click group as the `pipeline` command."""

from pipeline.cli import main

if __name__ == "__main__":
    main()
