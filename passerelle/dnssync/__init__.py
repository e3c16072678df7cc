"""DNS sync: every served host resolves to the ingress nodes that can serve it (docs/dns-sync.md).

`plan.py` is the pure core: the served configuration, the snapshot's Nodes and Pods and the
record sets read from each zone in, changes and Problems out (`desired.py` says what DNS should
hold: eligible nodes, managed names; `records.py` holds record sets, changes and the ownership
TXT). `provider.py` is the two-call seam to a DNS backend and its error tree; `rfc2136.py`
implements it with TSIG, AXFR and UPDATE. `controller.py` runs the loop: inputs recorded by the provider and the watcher, a reconcile
on change and every interval, only as leader (`control/leadership.py`), retries with backoff.
`drain.py` sequences a node's exit: out of DNS, wait the TTL, `/ping` 503, stop.
"""
