variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service and the BigQuery datasets' location default."
  type        = string
  default     = "europe-west1"
}

variable "zone" {
  description = "Zone of the streamer instance groups; empty = \"<region>-b\"."
  type        = string
  default     = ""
}

variable "bigquery_location" {
  description = "BigQuery dataset location; empty = var.region."
  type        = string
  default     = ""
}

variable "image" {
  description = "Container image of deploy/Dockerfile, e.g. europe-west1-docker.pkg.dev/PROJECT/tributary/tributary:v1."
  type        = string
}

variable "binary_url" {
  description = "gs:// URL of the opt binary for the streamer VMs (copied out of the image; see deploy/README.md)."
  type        = string
  validation {
    condition     = can(regex("^gs://[^/]+/.+", var.binary_url))
    error_message = "binary_url must be gs://BUCKET/OBJECT."
  }
}

variable "binary_sha256" {
  description = "SHA-256 of the binary at binary_url; empty = not checked. Changing it (or binary_url) makes a new instance template, i.e. a rollout."
  type        = string
  default     = ""
}

variable "resources_file" {
  description = "Topics and subscriptions (the emulator's --config format)."
  type        = string
  default     = "../../examples/emulator.json"
}

variable "tables_dir" {
  description = "Directory of <dataset>.<table>.json table files (src/bigquery/schema.h format)."
  type        = string
  default     = "../../examples/tables"
}

variable "exactly_once_delivery" {
  description = "Enable Pub/Sub exactly-once delivery on the subscriptions with a dead-letter policy (the ones the streamer reads)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the BigQuery tables and the Cloud Run service from `terraform destroy`."
  type        = bool
  default     = true
}

# --- Cloud Run (tributary ingest) ---

variable "ingest_routes" {
  description = "tributary ingest --routes."
  type        = string
  default     = "/=issues,/events=backend-events:raw,/orders=raw-orders:raw"
}

variable "ingest_topics" {
  description = "Topics ingest publishes to (it gets roles/pubsub.publisher on these only)."
  type        = list(string)
  default     = ["issues", "backend-events", "raw-orders"]
}

variable "ingest_min_instances" {
  type    = number
  default = 1
}

variable "ingest_max_instances" {
  type    = number
  default = 20
}

variable "ingest_concurrency" {
  description = "Requests one Cloud Run instance serves at once."
  type        = number
  default     = 200
}

variable "ingest_cpu" {
  type    = string
  default = "1"
}

variable "ingest_memory" {
  type    = string
  default = "512Mi"
}

variable "ingest_public" {
  description = "Grant roles/run.invoker to allUsers (then protect POSTs with TRB_INGEST_BEARER_TOKEN)."
  type        = bool
  default     = false
}

variable "firestore_trigger" {
  description = "Create an Eventarc trigger sending Firestore document events (document path pattern below) to ingest's / route."
  type        = bool
  default     = false
}

variable "firestore_document_pattern" {
  type    = string
  default = "issues/{issueId}"
}

variable "firestore_event_type" {
  type    = string
  default = "google.cloud.firestore.document.v1.written"
}

variable "firestore_location" {
  description = "Location of the Firestore database (the trigger's location); empty = var.region."
  type        = string
  default     = ""
}

# --- Compute Engine (tributary stream) ---

variable "pipelines" {
  description = "Streamer pipelines: name => pipeline file (relative to this module). One instance group each."
  type        = map(string)
  default = {
    "backend-events" = "../../examples/pipelines/backend-events.json"
    "issues"         = "../../examples/pipelines/issues.json"
    "raw-orders"     = "../../examples/pipelines/raw-orders.json"
  }
}

variable "stream_machine_type" {
  type    = string
  default = "e2-standard-2"
}

variable "stream_wal_disk_gb" {
  description = "Size of each VM's WAL persistent disk (keep above the pipeline's wal_max_bytes, default 1 GiB)."
  type        = number
  default     = 20
}

variable "stream_stateful_wal" {
  description = <<-EOT
    true: the WAL disk is stateful (kept across autohealing and VM recreation, so a crash never
    re-writes rows), and the group has a fixed size (Compute Engine cannot autoscale a stateful MIG).
    false: the group autoscales on the subscription backlog; the WAL disk lives as long as its VM
    (it survives process crashes and reboots, not VM recreation).
  EOT
  type        = bool
  default     = false
}

variable "stream_min_instances" {
  type    = number
  default = 1
}

variable "stream_max_instances" {
  type    = number
  default = 4
}

variable "stream_backlog_per_instance" {
  description = "Autoscaling target: undelivered messages of the subscription per VM."
  type        = number
  default     = 50000
}

variable "stream_network" {
  type    = string
  default = "default"
}

variable "stream_subnetwork" {
  description = "Subnetwork self link or name; empty = the network's auto subnet."
  type        = string
  default     = ""
}

variable "stream_ops_agent" {
  description = "Install the Ops Agent on the VMs (journal to Cloud Logging, /metrics to Cloud Monitoring)."
  type        = bool
  default     = true
}
