"""The gateway's scheduling parts: pure planning and retry decisions, and the HTTP caller."""
