"""Generated protobuf modules for keys, signed envelopes and peer records (regenerate with
``tools/gen_protos.sh``)."""
