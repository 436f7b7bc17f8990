-- tapflow 0003: risk flags arrive from three streams. Validators send theirs inside their
-- decision bundles (stream DECISIONS), settlers inside their settlement bundles (SETTLEMENTS);
-- risk-window rules and ingest send flags alone (RISK). `stream_seq` is a sequence of the stream
-- the flag's message came from, named by `source_stream`; the sink's high-water mark of
-- risk_flags is kept per source stream: max(stream_seq) GROUP BY source_stream.
--
-- One message now gives many rows of a table with the same stream_seq (a bundle of taps gives
-- many decision rows): a mark says every message up to it is stored, whole.

ALTER TABLE risk_flags ADD COLUMN IF NOT EXISTS source_stream LowCardinality(String) DEFAULT 'RISK' AFTER stream_seq;
