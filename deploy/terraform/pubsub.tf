# Topics and subscriptions from the emulator's resource file (the same one
# the local setup uses: examples/emulator.json), so local and cloud agree.

locals {
  resources     = jsondecode(file("${path.module}/${var.resources_file}"))
  topics        = toset(local.resources.topics)
  subscriptions = { for s in local.resources.subscriptions : s.name => s }
  # Subscriptions with a dead-letter policy, and their dead-letter topics.
  dl_subscriptions   = { for k, s in local.subscriptions : k => s if try(s.deadLetterPolicy, null) != null }
  dead_letter_topics = toset([for s in local.dl_subscriptions : s.deadLetterPolicy.deadLetterTopic])
  pubsub_agent       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project
}

resource "google_project_service" "apis" {
  for_each = toset([
    "pubsub.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "run.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "monitoring.googleapis.com",
    "logging.googleapis.com",
  ])
  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

resource "google_pubsub_topic" "topic" {
  for_each                   = local.topics
  project                    = var.project
  name                       = each.value
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_subscription" "sub" {
  for_each             = local.subscriptions
  project              = var.project
  name                 = each.key
  topic                = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds = try(each.value.ackDeadlineSeconds, 10)
  # The streamer acks only what is in BigQuery; keep unacked messages 7 days.
  message_retention_duration   = "604800s"
  enable_exactly_once_delivery = var.exactly_once_delivery && contains(keys(local.dl_subscriptions), each.key)

  expiration_policy {
    ttl = "" # never expire
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dynamic "dead_letter_policy" {
    for_each = try(each.value.deadLetterPolicy, null) == null ? [] : [each.value.deadLetterPolicy]
    content {
      dead_letter_topic     = google_pubsub_topic.topic[dead_letter_policy.value.deadLetterTopic].id
      max_delivery_attempts = try(dead_letter_policy.value.maxDeliveryAttempts, 5)
    }
  }
}

# Dead-letter forwarding is done by the Pub/Sub service agent: it must be
# able to publish to the dead-letter topic and to ack on the source
# subscription (https://cloud.google.com/pubsub/docs/handling-failures).
resource "google_pubsub_topic_iam_member" "agent_dead_letter_publisher" {
  for_each = local.dead_letter_topics
  project  = var.project
  topic    = google_pubsub_topic.topic[each.value].name
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_source_subscriber" {
  for_each     = local.dl_subscriptions
  project      = var.project
  subscription = google_pubsub_subscription.sub[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
