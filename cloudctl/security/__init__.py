"""Security: vulnerability scanner reports and scans, turned into findings people can act on."""
