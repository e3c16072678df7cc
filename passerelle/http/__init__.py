"""Sans-IO HTTP/1.1 helpers shared by the proxy and the API: header sets, framing, canned answers;
and the HTTP/2 field conversions (`h2fields.py` from clients, `h2c.py` to h2c upstreams).

Nothing here touches a socket. Header names are compared lower-cased as bytes, exactly as the
httptools parser hands them over, so the proxy never decodes a header it only forwards.
"""
