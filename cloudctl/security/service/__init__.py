"""The rules of security operations, one module per concept:

- :mod:`.assets` — scanned addresses linked to the cloud servers holding them, their business systems and MLPS
  levels (the cloud's record outranks the extranet plan's), a level set by hand kept;
- :mod:`.findings` — scan-report imports, findings with SLA deadlines, rectification tickets (以查促改);
- :mod:`.alerts` — alerts by webhook, triage verdicts, the six response steps, the block list;
- :mod:`.duty` — duty periods, shifts and the period reports units owe, zero-reports included (零报告).
"""
