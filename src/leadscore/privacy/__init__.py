"""Privacy: a person's data exported (portability, with their score explained), erased (with a full
scan to prove it), and old events removed by retention."""
