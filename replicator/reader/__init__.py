"""The source side of the reader: the binlog adapter (:mod:`.binlog`), row decoding (:mod:`.decode`),
schema tracking (:mod:`.schema`), start-up checks (:mod:`.checks`, :mod:`.server`) and the wiring of
the real adapters into a reader (:mod:`.runtime`)."""
