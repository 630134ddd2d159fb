import sys

from hdrbench.cli import main

sys.exit(main())
