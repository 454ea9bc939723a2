"""Formal proofs of the bus interfaces (make formal): Amaranth harnesses with Assert/Assume/Cover around
the rtl/ components, proved by SymbiYosys (yowasp-sby) with the z3 SMT solver. `job.py` runs one job;
each property module exposes `JOBS`; `run.py` runs them all and writes the report."""
