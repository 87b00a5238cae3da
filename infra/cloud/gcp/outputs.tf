output "database" {
  description = "Private addresses of the Cloud SQL primary and its read replica"
  value       = module.database.addresses
}

output "redis_host" {
  description = "Memorystore host (BIFROST_REDIS_URL, TLS)"
  value       = module.cache.host
}

output "storage_roots" {
  description = "BIFROST_HOT_ROOT and BIFROST_ARCHIVE_ROOT (gs:// through gcsfs)"
  value       = { for tier, bucket in module.storage.buckets : tier => "gs://${bucket}/" }
}

output "cluster" {
  description = "GKE cluster running the API, the Prefect server and the worker pools"
  value       = module.compute.cluster
}
