output "ingest_url" {
  description = "URL of the tributary-ingest Cloud Run service."
  value       = google_cloud_run_v2_service.ingest.uri
}

output "ingest_service_account" {
  value = google_service_account.ingest.email
}

output "stream_service_account" {
  value = google_service_account.stream.email
}

output "stream_instance_groups" {
  description = "Pipeline => managed instance group."
  value       = { for k, g in google_compute_instance_group_manager.stream : k => g.instance_group }
}

output "tables" {
  value = [for k, t in google_bigquery_table.table : "${var.project}.${t.dataset_id}.${t.table_id}"]
}
