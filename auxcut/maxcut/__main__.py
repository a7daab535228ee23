import sys

from auxcut.maxcut.cli import main

sys.exit(main())
