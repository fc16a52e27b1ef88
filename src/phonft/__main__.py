import sys

from phonft.cli import main

sys.exit(main())
