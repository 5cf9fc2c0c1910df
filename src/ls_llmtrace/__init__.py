"""ls-llmtrace: tie LLM feedback to traces through Label Studio.

Pipeline, one module per step: importers (traces in) -> convert (tasks out) ->
labelconfig (what reviewers see) -> backend / judges (predictions) -> sync + mapping
(annotations back) -> store (records) -> golden (regression sets).
"""

__version__ = "0.1.0"
