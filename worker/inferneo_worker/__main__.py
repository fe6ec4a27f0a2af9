"""``python -m inferneo_worker``: see ``main.py`` for the options."""

import sys

from .main import main

sys.exit(main())
