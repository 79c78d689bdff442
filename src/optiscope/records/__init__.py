"""Records: the schema of every record and quantity, and the JSONL writer and reader."""
