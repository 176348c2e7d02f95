"""Generated protobuf module for the p2pd control protocol (regenerate with
``tools/gen_protos.sh``)."""
