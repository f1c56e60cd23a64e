"""Money (资费 / 计费 / 账单): tariffs per provider cloud, monthly statements of what each unit ran."""
