"""Rules: Prometheus rule files (rulefile.py: reading and checking them as Prometheus does).
Evaluation, the alert state machine and the ALERTS series are to come (issue 5). May import
model, store and promql; never the HTTP layer."""

from watchkeeper.rules.rulefile import Rule, RuleFileError, RuleGroup, load_file, parse_groups

__all__ = ["Rule", "RuleFileError", "RuleGroup", "load_file", "parse_groups"]
