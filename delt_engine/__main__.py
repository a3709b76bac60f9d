"""``python -m delt_engine``: the command-line interface."""

import os
import sys

from .cli import main

code = main()
if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
    # Under torchrun the results are written and the process group is left by now. Skip the
    # interpreter's teardown: gloo's background threads can abort it ("terminate called without an
    # active exception"), which torchrun would report as a failed worker after a successful run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
