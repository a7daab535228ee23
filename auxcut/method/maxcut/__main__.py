import sys

from auxcut.method.maxcut.cli import main

sys.exit(main())
