"""cloudctl: operations console of a government cloud and e-government extranet."""
