"""`wa-support loadtest`: simulated customers writing signed webhooks to a running service.

Each customer writes, waits for its reply and thinks, as a person does (closed loop), or
the customers together write at a fixed rate (open loop). The report counts lost,
duplicated and out-of-order replies, checked against the database and the record of
sends, and the service's CPU time per reply.
"""
