"""Sessions that leave a record: terminal recordings, a hash-chained audit log, cluster Events.

- ``state``: the user's private state directory and files created there without following links.
- ``recording``: asciicast v2 recordings of interactive shells (the format ``asciinema play``
  reads), written as the session runs, and their replay.
- ``log``: the audit log, JSON lines chained by sha256, appended under an exclusive lock.
- ``witness``: what one command leaves behind: the entries, the recording, the Event.
"""
