"""The question side of ScaleQuest: rewrite prompts and their parsing, the HTTP optimizer
client, solvability judging, the language rule, the fail-rate regressor, and sampling
questions from the bare pre-query prefix."""
