"""The SQL case store: schema, engine/sessions, and case operations."""
