"""Deep review: findings and their safe application (``findings``), the offline rules (``rules``),
the cache-friendly requests (``requests``), the tiered Haiku-then-Sonnet run (``tiered``) and
what is shown of it (``router``), protocol frames (``frames``); ``factory.make_reviewer`` picks
one."""
