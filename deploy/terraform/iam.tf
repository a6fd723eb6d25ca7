# Service accounts, least privilege:
#   tributary-ingest  — roles/pubsub.publisher on the topics ingest publishes to.
#   tributary-stream  — roles/pubsub.subscriber on each pipeline's subscription,
#                       roles/pubsub.publisher on its dead-letter topic,
#                       roles/bigquery.dataEditor on the datasets it writes,
#                       (+ log / metric writer for the Ops Agent when enabled,
#                        + objectViewer on the binary's bucket).
#   tributary-eventarc — receives Firestore events, invokes the ingest service.

resource "google_service_account" "ingest" {
  project      = var.project
  account_id   = "tributary-ingest"
  display_name = "Tributary ingest (Cloud Run)"
}

resource "google_service_account" "stream" {
  project      = var.project
  account_id   = "tributary-stream"
  display_name = "Tributary stream (Compute Engine)"
}

resource "google_pubsub_topic_iam_member" "ingest_publisher" {
  for_each = toset(var.ingest_topics)
  project  = var.project
  topic    = google_pubsub_topic.topic[each.value].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.ingest.member
}

locals {
  pipeline_cfg = {
    for name, f in var.pipelines : name => jsondecode(file("${path.module}/${f}"))
  }
  # Short names only (the pipeline files use them); the project is the deployment's.
  stream_subscriptions = toset([for p in local.pipeline_cfg : p.subscription])
  stream_dead_letters  = toset([for p in local.pipeline_cfg : p.dead_letter_topic])
  stream_datasets = toset(flatten([
    for p in local.pipeline_cfg : concat(
      [for r in try(p.routes, []) : split(".", r.table)[0]],
      try([split(".", p.default_table)[0]], []),
      [for t, _ in try(p.tables, {}) : split(".", t)[0]],
    )
  ]))
  binary_bucket = regex("^gs://([^/]+)/", var.binary_url)[0]
}

resource "google_pubsub_subscription_iam_member" "stream_subscriber" {
  for_each     = local.stream_subscriptions
  project      = var.project
  subscription = google_pubsub_subscription.sub[each.value].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.stream.member
}

resource "google_pubsub_topic_iam_member" "stream_dead_letter_publisher" {
  for_each = local.stream_dead_letters
  project  = var.project
  topic    = google_pubsub_topic.topic[each.value].name
  role     = "roles/pubsub.publisher"
  member   = google_service_account.stream.member
}

resource "google_bigquery_dataset_iam_member" "stream_data_editor" {
  for_each   = local.stream_datasets
  project    = var.project
  dataset_id = google_bigquery_dataset.ds[each.value].dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.stream.member
}

resource "google_storage_bucket_iam_member" "stream_binary_reader" {
  bucket = local.binary_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.stream.member
}

resource "google_project_iam_member" "stream_ops_agent" {
  for_each = var.stream_ops_agent ? toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"]) : toset([])
  project  = var.project
  role     = each.value
  member   = google_service_account.stream.member
}
