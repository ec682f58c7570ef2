"""python -m tl_core ...: the command line (tl_core.cli)."""
import sys

from tl_core.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
