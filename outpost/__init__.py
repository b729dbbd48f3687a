"""outpost: multi-tenant event delivery to Kinesis and more."""
