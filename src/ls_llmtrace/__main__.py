"""``python -m ls_llmtrace`` runs the command line."""

from ls_llmtrace.cli import main

main()
