"""Generated protobuf modules for AutoNAT v1 and v2 (regenerate with ``tools/gen_protos.sh``)."""
