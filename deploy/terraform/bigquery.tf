# Datasets and tables from the table files (examples/tables/<dataset>.<table>.json,
# the emulator's --tables format): schema, description, time partitioning
# and clustering are taken from the files as they are.

locals {
  table_files = fileset("${path.module}/${var.tables_dir}", "*.json")
  tables = {
    for f in local.table_files :
    trimsuffix(f, ".json") => merge(
      jsondecode(file("${path.module}/${var.tables_dir}/${f}")),
      {
        dataset = split(".", trimsuffix(f, ".json"))[0]
        table   = split(".", trimsuffix(f, ".json"))[1]
      }
    )
  }
  datasets    = toset([for t in local.tables : t.dataset])
  bq_location = var.bigquery_location != "" ? var.bigquery_location : var.region
}

resource "google_bigquery_dataset" "ds" {
  for_each   = local.datasets
  project    = var.project
  dataset_id = each.value
  location   = local.bq_location
  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "table" {
  for_each            = local.tables
  project             = var.project
  dataset_id          = google_bigquery_dataset.ds[each.value.dataset].dataset_id
  table_id            = each.value.table
  description         = try(each.value.description, null)
  schema              = jsonencode(each.value.schema)
  clustering          = try(each.value.clustering.fields, null)
  deletion_protection = var.deletion_protection

  dynamic "time_partitioning" {
    for_each = try(each.value.timePartitioning, null) == null ? [] : [each.value.timePartitioning]
    content {
      type  = time_partitioning.value.type
      field = try(time_partitioning.value.field, null)
    }
  }

  dynamic "range_partitioning" {
    for_each = try(each.value.rangePartitioning, null) == null ? [] : [each.value.rangePartitioning]
    content {
      field = range_partitioning.value.field
      range {
        start    = range_partitioning.value.range.start
        end      = range_partitioning.value.range.end
        interval = range_partitioning.value.range.interval
      }
    }
  }
}
