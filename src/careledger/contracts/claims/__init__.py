"""Claims contract: coverage, plan and rule-table versions, claims and their adjudication records."""
