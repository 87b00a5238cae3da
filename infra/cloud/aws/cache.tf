# ElastiCache Redis in the data zone: Bifrost's cache (BIFROST_REDIS_URL).
resource "aws_elasticache_subnet_group" "data" {
  name       = local.name
  subnet_ids = local.zone_subnets["data"]
}

resource "aws_elasticache_replication_group" "main" {
  replication_group_id       = local.name
  description                = "Bifrost cache"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.cache_node_type
  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true
  subnet_group_name          = aws_elasticache_subnet_group.data.name
  security_group_ids         = [aws_security_group.cache.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.main.arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis.result
  snapshot_retention_limit   = 7
  auto_minor_version_upgrade = true
}
