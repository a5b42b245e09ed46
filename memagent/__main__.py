"""``python -m memagent``: the ``memagent`` command line (see ``memagent.cli``)."""

import sys

from memagent.cli import main

if __name__ == "__main__":
    sys.exit(main())
