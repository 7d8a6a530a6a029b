"""Series: several runs made as one thing — the explain table's columns, the strength × steps grid, loopback — each
a list of prepared requests streamed one after another through the page's backend."""
