"""`sqjax plan`: each stage's device programs compiled ahead of time for a TPU slice on any
machine (libtpu's deviceless compile), their memory per device against HBM, a fix checked
by compiling it for each program that does not fit, and a roofline estimate of each stage's
time. See sqjax/plan/api.py."""

from sqjax.plan.api import PlanResult, plan
from sqjax.plan.topology import TOPOLOGIES

__all__ = ("TOPOLOGIES", "PlanResult", "plan")
