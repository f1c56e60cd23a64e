"""Organisation: the tree of units (单位), business systems (业务系统), users and API tokens."""
