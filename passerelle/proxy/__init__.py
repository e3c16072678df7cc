"""The data plane: accept client connections, route each request, proxy it to a pooled upstream.

A `ClientConnection` (asyncio Protocol, httptools request parser) turns each request into an
`Exchange`: the upstream request head is built once, at headers-complete, and the body streams
as it arrives. An `UpstreamConnection` (httptools response parser) hands the response back the same
way; for Services in h2c (gRPC) an `h2c.H2cStream` on a pooled HTTP/2 connection stands in for
it. Back-pressure is transport pausing in both directions: a full write buffer on one side pauses
reading on the other. Timeouts are coarse deadlines swept by one timer per entry point
(`deadlines.py`), so no request allocates a timer. `Dataplane` owns the listening sockets, the
upstream pools and the live route tables; `apply()` compiles a configuration beside the live one
and swaps it in one assignment, so in-flight exchanges keep the route objects they started with;
`patch_steps()` does the same for a change set, rebuilding only the hosts it names.
"""
