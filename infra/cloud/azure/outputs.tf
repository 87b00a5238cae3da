output "database" {
  description = "PostgreSQL primary and replica host names"
  value       = module.database.hosts
}

output "redis_host" {
  description = "Azure Cache for Redis host (TLS port 6380)"
  value       = module.cache.host
}

output "storage_roots" {
  description = "BIFROST_HOT_ROOT and BIFROST_ARCHIVE_ROOT (abfs:// through adlfs)"
  value       = module.storage.roots
}

output "cluster" {
  description = "AKS cluster running the API, the Prefect server and the worker pools"
  value       = module.compute.cluster
}
