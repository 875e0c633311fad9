"""Rules: Prometheus rule files (rulefile.py, read and checked as Prometheus does), their
templates (templates.py, template_functions.py: Go's text/template with Prometheus'
functions), the alert state machine (alerting.py), a group's evaluation into the store
(group.py), scheduling, reloading and restoring state per tenant (manager.py) and promtool's
rule unit tests (unittests.py). May import model, store and promql; never the HTTP layer."""

from watchkeeper.rules.alerting import Alert, AlertState
from watchkeeper.rules.group import GroupEvaluator, RestoreOptions, RuleState
from watchkeeper.rules.manager import RuleManager, RulesOptions, TenantRules
from watchkeeper.rules.rulefile import Rule, RuleFileError, RuleGroup, load_file, parse_groups

__all__ = [
    "Alert",
    "AlertState",
    "GroupEvaluator",
    "RestoreOptions",
    "Rule",
    "RuleFileError",
    "RuleGroup",
    "RuleManager",
    "RuleState",
    "RulesOptions",
    "TenantRules",
    "load_file",
    "parse_groups",
]
