# Credentials live in Secrets Manager; ECS injects them into the tasks (never in variables or
# task definitions). Aurora manages and rotates its master password itself.
resource "aws_secretsmanager_secret" "bifrost" {
  for_each = {
    api_database_url    = "BIFROST_DATABASE_URL of the API role (infra/database/roles.sql): postgresql+psycopg://bifrost_api:...@writer/bifrost"
    worker_database_url = "BIFROST_DATABASE_URL of the worker role"
    replica_urls        = "BIFROST_DATABASE_REPLICA_URLS: the reader endpoint as the reader role"
    prefect_database    = "PREFECT_API_DATABASE_CONNECTION_URL of the Prefect server's own database"
    redis_url           = "BIFROST_REDIS_URL with the ElastiCache auth token"
  }
  name                    = "${local.name}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 30
  #checkov:skip=CKV2_AWS_57:These URLs carry the passwords of PostgreSQL roles that infra/database/roles.sql makes, not of an AWS resource: they are rotated with the roles (no rotation Lambda can change them)
}

resource "random_password" "redis" {
  length  = 64
  special = false
}
