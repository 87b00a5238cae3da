# The hot and archive tiers as Cloud Storage buckets in a dual-region (replicated by Google
# across two regions, turbo replication on): versioned, private, encrypted with the customer
# key; the archive moves to the ARCHIVE class, replaced hot versions expire.
variable "name" { type = string }
variable "location" { type = string }
variable "kms_key" { type = string }
variable "archive_transition_days" { type = number }
variable "labels" { type = map(string) }

resource "google_storage_bucket" "logs" {
  name                        = "${var.name}-access-logs"
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = var.kms_key
  }
  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
  #checkov:skip=CKV_GCP_62:The access-log bucket does not log its own access
}

resource "google_storage_bucket" "tier" {
  for_each                    = toset(["hot", "archive"])
  name                        = "${var.name}-${each.key}"
  location                    = var.location
  rpo                         = "ASYNC_TURBO"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = var.kms_key
  }
  logging {
    log_bucket        = google_storage_bucket.logs.name
    log_object_prefix = each.key
  }
  dynamic "lifecycle_rule" {
    for_each = each.key == "archive" ? [var.archive_transition_days] : []
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type          = "SetStorageClass"
        storage_class = "ARCHIVE"
      }
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

output "buckets" {
  value = { for tier, bucket in google_storage_bucket.tier : tier => bucket.name }
}
