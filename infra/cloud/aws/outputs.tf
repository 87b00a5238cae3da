output "api_endpoint" {
  description = "DNS name of the API load balancer (point the API host name at it)"
  value       = aws_lb.api.dns_name
}

output "review_media_domain" {
  description = "CloudFront domain of the review media distribution"
  value       = aws_cloudfront_distribution.review.domain_name
}

output "database" {
  description = "Aurora endpoints: the writer (BIFROST_DATABASE_URL) and the readers (BIFROST_DATABASE_REPLICA_URLS)"
  value = {
    writer = aws_rds_cluster.main.endpoint
    reader = aws_rds_cluster.main.reader_endpoint
  }
}

output "redis_endpoint" {
  description = "ElastiCache primary endpoint (rediss://, BIFROST_REDIS_URL)"
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "search_endpoint" {
  description = "OpenSearch domain endpoint"
  value       = aws_opensearch_domain.main.endpoint
}

output "storage_roots" {
  description = "BIFROST_HOT_ROOT and BIFROST_ARCHIVE_ROOT"
  value       = { hot = local.environment.BIFROST_HOT_ROOT, archive = local.environment.BIFROST_ARCHIVE_ROOT }
}

output "image_repository" {
  description = "ECR repository to push the image to"
  value       = aws_ecr_repository.bifrost.repository_url
}

# Which work pool runs where. bifrost-cpu and bifrost-gpu are the process pools `bifrost deploy`
# creates; their workers are the ECS services named here.
output "work_pools" {
  description = "Prefect work pool -> the ECS service whose tasks are its workers"
  value = {
    bifrost-cpu = { service = aws_ecs_service.service["worker-cpu"].name, capacity = "FARGATE" }
    bifrost-gpu = { service = aws_ecs_service.worker_gpu.name, capacity = aws_ecs_capacity_provider.gpu.name }
  }
}

# For an ECS-type pool made from deployments/pools/ecs.json (one ECS task per flow run):
#   prefect work-pool create bifrost-ecs --type ecs --base-job-template deployments/pools/ecs.json
# then set these as the pool's job variables.
output "ecs_pool_job_variables" {
  description = "Variables of deployments/pools/ecs.json for an ECS work pool in this cluster"
  value = {
    cluster            = aws_ecs_cluster.main.arn
    image              = var.image
    vpc_id             = aws_vpc.main.id
    execution_role_arn = aws_iam_role.execution.arn
    task_role_arn      = aws_iam_role.task["worker"].arn
    network_configuration = {
      subnets        = local.zone_subnets["service"]
      securityGroups = [aws_security_group.worker.id]
      assignPublicIp = "DISABLED"
    }
    bifrost_secrets = [
      { name = "BIFROST_DATABASE_URL", valueFrom = aws_secretsmanager_secret.bifrost["worker_database_url"].arn },
      { name = "BIFROST_REDIS_URL", valueFrom = aws_secretsmanager_secret.bifrost["redis_url"].arn },
    ]
    env = merge(local.environment, { BIFROST_CHECKOUT = "/opt/bifrost" })
  }
}
