"""The rules of security operations, one module per concept:

- :mod:`.findings` — scan-report imports, findings with SLA deadlines, rectification tickets (以查促改);
- :mod:`.alerts` — alerts by webhook, triage verdicts, the six response steps, the block list;
- :mod:`.duty` — duty periods, shifts and the period reports units owe, zero-reports included (零报告).
"""
