"""The face pipeline, with no HTTP in it: decode a photo or a frame, find faces, describe them.

The detect service serves it over HTTP; anything else that needs faces found (a stream) uses it the same way.
"""
