"""Generated protobuf module for DCUtR (regenerate with ``tools/gen_protos.sh``)."""
