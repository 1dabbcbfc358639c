import sys

from pipelines.cli.app import entry

sys.exit(entry())
