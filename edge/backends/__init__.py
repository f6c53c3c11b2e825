"""Inference backends on the host side: what each needs before packaging (preflight checks, graph
rewrites, conversion). Their device-side halves are edge/runtime/ort.py and edge/runtime/mx.py."""
