"""Block storage (Cinder v3, issue 15): volume records and their workflows live here; the
backends that hold the data are in `backends/` behind the interface in `backend.py`."""
