"""`python -m auxcut SUBCOMMAND`: the `auxcut` command (auxcut.apps.cli) without the installed script."""

from auxcut.apps.cli import main

main()
