"""The rules of the extranet, one module per concept (as NetBox splits a grown app):

- :mod:`.access` — units' lines and the access rate (接入率);
- :mod:`.ipam` — the address plan and IP applications (IP地址审批 + 安全承诺);
- :mod:`.collection` — what devices' ARP and MAC tables show (终端地址采集);
- :mod:`.compliance` — the compliance rules run over plan and observation, violations, the unit scorecard.
"""
