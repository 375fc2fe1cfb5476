"""What this sandbox got: the CPU (``cpu``: model and int8 instructions) and its share of it (``threads``:
threads from the memory size). Leaves: the runtime, the API's self-check and the backends all read them."""
