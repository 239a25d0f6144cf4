"""Placing destinations: country, city and AS from MaxMind or DB-IP databases."""
