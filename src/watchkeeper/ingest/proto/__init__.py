"""Generated protobuf modules for the wire formats watchkeeper speaks (regenerate: `make proto`)."""
