"""``python main.py`` starts the TUI; ``python main.py --help`` lists the headless commands."""

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
