"""``python -m qa_tools.publish``: see ``qa_tools.publish.cli``."""

import sys

from qa_tools.publish.cli import main

sys.exit(main())
