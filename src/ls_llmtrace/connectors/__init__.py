"""Connectors to the tracing tools a team already uses: traces pulled from them into
queues, reviewer records pushed back to them where engineers debug."""
