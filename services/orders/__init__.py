"""Orders service: orders, the reservation saga, idempotency, the state machine, payments, the outbox."""
