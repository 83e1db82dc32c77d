"""The load tests' defaults, in one place: the Locust users (``locustfile.py``) and the harness
(``run.py``) both read them, so ``locust -f`` on its own and ``run.py run`` send the same load."""

#: Requests per second of the whole run (Locust's pacing); 0 sends as fast as the users can.
RPS = 300.0
#: Share of requests carrying a batch of 2 to 10 records instead of one (the README's figures
#: are of single records).
BATCH_SHARE = 0.0
