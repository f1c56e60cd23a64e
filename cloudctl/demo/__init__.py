"""The demo city: a deterministic generator and the seeder that writes it."""
