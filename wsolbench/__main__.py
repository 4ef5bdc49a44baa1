import sys

from wsolbench.cli import main

sys.exit(main())
