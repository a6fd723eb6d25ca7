"""The official Google API protos Tributary compiles, from google-proto-files."""

GOOGLE_PROTO_FILES_VERSION = "6.0.1"

# npm's dist.integrity for google-proto-files@6.0.1 (`npm view ... dist.integrity`).
GOOGLE_PROTO_FILES_INTEGRITY = "sha512-fbvUWVNh3rKGlVFWwlUNF7Sk1Tah0a89q02rLTXsWjbKKHGeuURAa8tl9rvu5TyWny1YiSIo5eDqF260Tai6vQ=="

# The services we speak and everything they import (transitively).
GOOGLE_PROTOS = [
    "google/pubsub/v1/pubsub",
    "google/pubsub/v1/schema",
    "google/cloud/bigquery/storage/v1/storage",
    "google/cloud/bigquery/storage/v1/stream",
    "google/cloud/bigquery/storage/v1/protobuf",
    "google/cloud/bigquery/storage/v1/table",
    "google/cloud/bigquery/storage/v1/annotations",
    "google/cloud/bigquery/storage/v1/arrow",
    "google/cloud/bigquery/storage/v1/avro",
    "google/rpc/status",
    "google/rpc/code",
    "google/rpc/error_details",
    "google/protobuf/descriptor",
    "google/protobuf/any",
    "google/protobuf/duration",
    "google/protobuf/empty",
    "google/protobuf/field_mask",
    "google/protobuf/struct",
    "google/protobuf/timestamp",
    "google/protobuf/wrappers",
    "google/api/annotations",
    "google/api/client",
    "google/api/field_behavior",
    "google/api/resource",
    "google/api/http",
    "google/api/launch_stage",
]
