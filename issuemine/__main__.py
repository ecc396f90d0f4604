"""`python -m issuemine` runs the command line."""

from issuemine.cli.app import main

main()
