"""``python -m delt_engine``: the command-line interface (the same as the ``delt`` script)."""

from .cli import exit_with, main

exit_with(main())
