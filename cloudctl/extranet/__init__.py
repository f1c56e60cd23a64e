"""The e-government extranet (电子政务外网): unit access, the IP address plan, what the wire shows, and compliance."""
