# `tributary stream` on Compute Engine: per pipeline, an instance template,
# a zonal managed instance group with autohealing on /healthz, and either an
# autoscaler on the subscription backlog or (stream_stateful_wal) a stateful
# WAL disk. deploy/gce/startup.sh installs the binary and the systemd unit
# deploy/gce/tributary-stream@.service on every boot.

locals {
  zone = var.zone != "" ? var.zone : "${var.region}-b"
  # Pipeline name => its ops HTTP port (/healthz, /readyz, /metrics).
  pipeline_port = { for n, p in local.pipeline_cfg : n => try(p.http_port, 9464) }
}

data "google_compute_image" "debian" {
  family  = "debian-12"
  project = "debian-cloud"
}

resource "google_compute_instance_template" "stream" {
  for_each     = var.pipelines
  project      = var.project
  name_prefix  = "tributary-stream-${each.key}-"
  machine_type = var.stream_machine_type
  region       = var.region
  labels       = { app = "tributary", pipeline = each.key }

  disk {
    boot         = true
    source_image = data.google_compute_image.debian.self_link
    disk_type    = "pd-balanced"
    disk_size_gb = 10
    auto_delete  = true
  }

  # The WAL. Stateless groups: deleted with its VM (auto_delete); stateful
  # groups: kept by the MIG's stateful policy across VM recreation.
  disk {
    boot         = false
    device_name  = "tributary-wal"
    disk_type    = "pd-balanced"
    disk_size_gb = var.stream_wal_disk_gb
    auto_delete  = !var.stream_stateful_wal
    type         = "PERSISTENT"
  }

  network_interface {
    network    = var.stream_network
    subnetwork = var.stream_subnetwork != "" ? var.stream_subnetwork : null
  }

  service_account {
    email  = google_service_account.stream.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    startup-script          = file("${path.module}/../gce/startup.sh")
    tributary-stream-unit   = file("${path.module}/../gce/tributary-stream@.service")
    tributary-pipeline-name = each.key
    tributary-pipeline      = file("${path.module}/${each.value}")
    tributary-binary-url    = var.binary_url
    tributary-binary-sha256 = var.binary_sha256
    tributary-ops-agent     = var.stream_ops_agent ? "true" : "false"
    enable-oslogin          = "TRUE"
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [
    google_pubsub_subscription_iam_member.stream_subscriber,
    google_pubsub_topic_iam_member.stream_dead_letter_publisher,
    google_bigquery_dataset_iam_member.stream_data_editor,
    google_storage_bucket_iam_member.stream_binary_reader,
  ]
}

resource "google_compute_health_check" "stream" {
  for_each            = var.pipelines
  project             = var.project
  name                = "tributary-stream-${each.key}"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 1
  unhealthy_threshold = 3

  http_health_check {
    port         = local.pipeline_port[each.key]
    request_path = "/healthz"
  }
}

# Health checks come from these Google ranges.
resource "google_compute_firewall" "stream_health" {
  project                 = var.project
  name                    = "tributary-stream-health-checks"
  network                 = var.stream_network
  direction               = "INGRESS"
  source_ranges           = ["35.191.0.0/16", "130.211.0.0/22"]
  target_service_accounts = [google_service_account.stream.email]

  allow {
    protocol = "tcp"
    ports    = [for p in distinct(values(local.pipeline_port)) : tostring(p)]
  }
}

resource "google_compute_instance_group_manager" "stream" {
  for_each           = var.pipelines
  project            = var.project
  name               = "tributary-stream-${each.key}"
  zone               = local.zone
  base_instance_name = "tributary-${each.key}"
  # Autoscaled groups take their size from the autoscaler.
  target_size = var.stream_stateful_wal ? var.stream_min_instances : null

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.stream[each.key].id
  }

  named_port {
    name = "ops"
    port = local.pipeline_port[each.key]
  }

  auto_healing_policies {
    health_check = google_compute_health_check.stream[each.key].id
    # Time for the startup script (apt, binary download) and the WAL replay.
    initial_delay_sec = 300
  }

  # Rollout of a new template: one VM at a time, never below the size;
  # the old VM gets SIGTERM (systemd stop) and drains first. Stateful
  # groups must recreate in place (same name, same disk).
  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    replacement_method    = var.stream_stateful_wal ? "RECREATE" : "SUBSTITUTE"
    max_surge_fixed       = var.stream_stateful_wal ? 0 : 1
    max_unavailable_fixed = var.stream_stateful_wal ? 1 : 0
  }

  dynamic "stateful_disk" {
    for_each = var.stream_stateful_wal ? ["tributary-wal"] : []
    content {
      device_name = stateful_disk.value
      delete_rule = "ON_PERMANENT_INSTANCE_DELETION"
    }
  }
}

# Backlog autoscaling: Cloud Monitoring's
# pubsub.googleapis.com/subscription/num_undelivered_messages for the
# pipeline's subscription, divided across the group
# (single_instance_assignment = messages one VM should handle).
resource "google_compute_autoscaler" "stream" {
  for_each = var.stream_stateful_wal ? {} : var.pipelines
  project  = var.project
  name     = "tributary-stream-${each.key}"
  zone     = local.zone
  target   = google_compute_instance_group_manager.stream[each.key].id

  autoscaling_policy {
    min_replicas    = var.stream_min_instances
    max_replicas    = var.stream_max_instances
    cooldown_period = 180
    # Scale in slowly: a VM leaving drains and its unacked messages are
    # redelivered to the others.
    scale_in_control {
      max_scaled_in_replicas {
        fixed = 1
      }
      time_window_sec = 600
    }

    metric {
      name                       = "pubsub.googleapis.com/subscription/num_undelivered_messages"
      filter                     = "resource.type = pubsub_subscription AND resource.labels.subscription_id = \"${local.pipeline_cfg[each.key].subscription}\""
      single_instance_assignment = var.stream_backlog_per_instance
    }
  }
}
