import sys

from scoot.cli import main

sys.exit(main())
