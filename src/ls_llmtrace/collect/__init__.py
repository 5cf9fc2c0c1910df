"""``ls-llmtrace collect``: an OTLP/HTTP receiver for live traces (receiver, spool,
assembler, the server it runs under)."""
