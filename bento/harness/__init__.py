"""Running the service outside a deployment (the tests, benchmarks/serving): a private redis-server, a synthetic world
to serve, `bentoml serve` as a subprocess. Not part of the bento: its bentofile includes bento/*.py only."""
