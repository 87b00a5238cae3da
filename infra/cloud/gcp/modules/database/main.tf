# Cloud SQL for PostgreSQL: a regional (high-availability) primary and a read replica in another
# zone, private IP only, encrypted with the customer key, TLS required.
variable "name" { type = string }
variable "region" { type = string }
variable "network" { type = string }
variable "tier" { type = string }
variable "kms_key" { type = string }
variable "replica_zone" { type = string }
variable "labels" { type = map(string) }

resource "google_sql_database_instance" "primary" {
  name                = "${var.name}-primary"
  region              = var.region
  database_version    = "POSTGRES_16"
  encryption_key_name = var.kms_key
  deletion_protection = true
  #checkov:skip=CKV_GCP_79:Pinned to PostgreSQL 16, the major version Bifrost runs on every cloud (Aurora 16 on AWS)
  #checkov:skip=CKV_GCP_6:TLS is required by ssl_mode = ENCRYPTED_ONLY (the provider's successor of require_ssl, which the check reads)
  settings {
    tier              = var.tier
    availability_type = "REGIONAL"
    user_labels       = var.labels
    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "ENCRYPTED_ONLY"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 35
      }
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    # Durations without the statements' text (CIS: statements may carry personal data).
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
}

resource "google_sql_database_instance" "replica" {
  name                 = "${var.name}-replica"
  region               = var.region
  database_version     = "POSTGRES_16"
  master_instance_name = google_sql_database_instance.primary.name
  encryption_key_name  = var.kms_key
  deletion_protection  = true
  #checkov:skip=CKV_GCP_79:Pinned to PostgreSQL 16, the major version Bifrost runs on every cloud (Aurora 16 on AWS)
  #checkov:skip=CKV_GCP_6:TLS is required by ssl_mode = ENCRYPTED_ONLY (the provider's successor of require_ssl, which the check reads)
  replica_configuration {
    failover_target = false
  }
  settings {
    tier              = var.tier
    availability_type = "ZONAL"
    user_labels       = var.labels
    location_preference {
      zone = var.replica_zone
    }
    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "ENCRYPTED_ONLY"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    # Durations without the statements' text (CIS: statements may carry personal data).
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
}

resource "google_sql_database" "bifrost" {
  for_each = toset(["bifrost", "prefect"])
  name     = each.key
  instance = google_sql_database_instance.primary.name
}

output "addresses" {
  value = {
    primary = google_sql_database_instance.primary.private_ip_address
    replica = google_sql_database_instance.replica.private_ip_address
  }
}
