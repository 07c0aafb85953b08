"""`python -m retrain_controller`: the CLI entry point."""

import sys

from retrain_controller.cli import main

sys.exit(main())
