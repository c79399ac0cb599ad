"""`distrodebug image IMAGE`: findings about what a final image still holds, without running it.

rules.py (what counts, how bad, the fix), archive.py (the saved image, streamed), layers.py (one
layer's scan, the final filesystem), report.py (findings and the report).
"""
