"""Records: the schema of every record and quantity, the JSONL writer and reader, and the
findings file (:mod:`optiscope.records.schema`, :mod:`optiscope.records.log`)."""
