"""Government cloud (政务云): clouds, flavors, quotas, resource requests, servers and provisioning."""
