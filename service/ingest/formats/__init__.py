"""One module per family of source formats. Each parser takes the raw bytes and the object's
name and returns `(title, text)`, raising `PermanentIngestError` for what it can say is wrong;
`service.ingest.parse` dispatches by extension and turns any other exception into a
permanent failure with a reason."""
