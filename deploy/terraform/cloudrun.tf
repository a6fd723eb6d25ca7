# `tributary ingest` on Cloud Run (deploy/cloudrun/ingest.service.yaml is
# the same service as Knative YAML for `gcloud run services replace`).

resource "google_cloud_run_v2_service" "ingest" {
  project             = var.project
  name                = "tributary-ingest"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.ingest.email
    max_instance_request_concurrency = var.ingest_concurrency
    timeout                          = "60s"
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      min_instance_count = var.ingest_min_instances
      max_instance_count = var.ingest_max_instances
    }

    containers {
      image = var.image
      # Cloud Run gives 10 s between SIGTERM and SIGKILL: drain within 8.
      args = ["ingest", "--routes", var.ingest_routes, "--grace", "8s"]

      # $PORT is set by Cloud Run to this port; ingest listens on $PORT.
      ports {
        container_port = 8080
      }

      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project
      }

      resources {
        limits = {
          cpu    = var.ingest_cpu
          memory = var.ingest_memory
        }
        cpu_idle          = false # the publisher batches between requests
        startup_cpu_boost = true
      }

      startup_probe {
        http_get {
          path = "/readyz"
          port = 8080
        }
        initial_delay_seconds = 0
        period_seconds        = 1
        timeout_seconds       = 1
        failure_threshold     = 30
      }

      # /healthz, not /readyz: a Pub/Sub outage makes /readyz 503 and a
      # restart would not cure it.
      liveness_probe {
        http_get {
          path = "/healthz"
          port = 8080
        }
        period_seconds    = 10
        timeout_seconds   = 2
        failure_threshold = 3
      }
    }
  }

  depends_on = [google_project_service.apis, google_pubsub_topic_iam_member.ingest_publisher]
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  count    = var.ingest_public ? 1 : 0
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.ingest.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --- Firestore → Eventarc → ingest -----------------------------------------

resource "google_service_account" "eventarc" {
  count        = var.firestore_trigger ? 1 : 0
  project      = var.project
  account_id   = "tributary-eventarc"
  display_name = "Tributary Eventarc trigger (Firestore to ingest)"
}

resource "google_project_iam_member" "eventarc_receiver" {
  count   = var.firestore_trigger ? 1 : 0
  project = var.project
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.eventarc[0].member
}

resource "google_cloud_run_v2_service_iam_member" "eventarc_invoker" {
  count    = var.firestore_trigger ? 1 : 0
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.ingest.name
  role     = "roles/run.invoker"
  member   = google_service_account.eventarc[0].member
}

resource "google_eventarc_trigger" "firestore" {
  count                   = var.firestore_trigger ? 1 : 0
  project                 = var.project
  name                    = "tributary-firestore"
  location                = var.firestore_location != "" ? var.firestore_location : var.region
  service_account         = google_service_account.eventarc[0].email
  event_data_content_type = "application/protobuf"

  matching_criteria {
    attribute = "type"
    value     = var.firestore_event_type
  }
  matching_criteria {
    attribute = "database"
    value     = "(default)"
  }
  matching_criteria {
    attribute = "document"
    value     = var.firestore_document_pattern
    operator  = "match-path-pattern"
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.ingest.name
      region  = var.region
      path    = "/"
    }
  }

  depends_on = [google_project_iam_member.eventarc_receiver, google_cloud_run_v2_service_iam_member.eventarc_invoker]
}
