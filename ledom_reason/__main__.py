import sys

from ledom_reason.cli import main

sys.exit(main())
