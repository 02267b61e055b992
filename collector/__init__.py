"""The pulsewire collector: the same pure-Python package in the browser (Pyodide), in an edge
worker (Pyodide) and in CPython. It turns what a visitor does into compact protobuf batches.

`collector.gen` holds the wire contract's generated messages (`./scripts/gen_protos`).
"""
