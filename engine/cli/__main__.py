"""``python -m sava.cli``, as torchrun starts its workers."""

import sys

from . import main

sys.exit(main())
