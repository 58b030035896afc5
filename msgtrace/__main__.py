"""`python -m msgtrace ...`: the msgtrace command line (the console script's main)."""

from msgtrace.cli import main

if __name__ == "__main__":
    main()
