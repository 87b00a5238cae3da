# Memorystore for Redis: standard tier (a replica with automatic failover), AUTH and TLS on,
# encrypted with the customer key, reached only over the private services range.
variable "name" { type = string }
variable "region" { type = string }
variable "network" { type = string }
variable "memory_gb" { type = number }
variable "kms_key" { type = string }
variable "labels" { type = map(string) }

resource "google_redis_instance" "main" {
  name                    = var.name
  region                  = var.region
  tier                    = "STANDARD_HA"
  memory_size_gb          = var.memory_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = var.network
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  customer_managed_key    = var.kms_key
  labels                  = var.labels
}

output "host" {
  value = google_redis_instance.main.host
}
