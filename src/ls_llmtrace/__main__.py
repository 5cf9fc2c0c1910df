"""``python -m ls_llmtrace`` runs the command line."""

from .cli import main

main()
