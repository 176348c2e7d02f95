"""Generated protobuf modules for circuit relay v2 (regenerate with ``tools/gen_protos.sh``)."""
