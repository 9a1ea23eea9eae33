"""Storage: the one connection and its lock (SQLite, or PostgreSQL), the schema, exact vector search in memory."""
