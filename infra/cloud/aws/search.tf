# OpenSearch in the data zone: Bifrost's search index (opensearch-py).
resource "aws_opensearch_domain" "main" {
  domain_name    = local.name
  engine_version = "OpenSearch_2.13"
  cluster_config {
    instance_type          = var.search_instance_type
    instance_count         = length(var.availability_zones)
    zone_awareness_enabled = true
    zone_awareness_config {
      availability_zone_count = length(var.availability_zones)
    }
    dedicated_master_enabled = true
    dedicated_master_type    = var.search_instance_type
    dedicated_master_count   = 3
  }
  vpc_options {
    subnet_ids         = local.zone_subnets["data"]
    security_group_ids = [aws_security_group.search.id]
  }
  ebs_options {
    ebs_enabled = true
    volume_type = "gp3"
    volume_size = 100
  }
  encrypt_at_rest {
    enabled    = true
    kms_key_id = aws_kms_key.main.arn
  }
  node_to_node_encryption {
    enabled = true
  }
  domain_endpoint_options {
    enforce_https       = true
    tls_security_policy = "Policy-Min-TLS-1-2-2019-07"
  }
  advanced_security_options {
    enabled                        = true
    internal_user_database_enabled = false
    master_user_options {
      master_user_arn = aws_iam_role.task["api"].arn
    }
  }
  log_publishing_options {
    cloudwatch_log_group_arn = aws_cloudwatch_log_group.search.arn
    log_type                 = "AUDIT_LOGS"
    enabled                  = true
  }
  log_publishing_options {
    cloudwatch_log_group_arn = aws_cloudwatch_log_group.search.arn
    log_type                 = "ES_APPLICATION_LOGS"
    enabled                  = true
  }
}

resource "aws_cloudwatch_log_group" "search" {
  name              = "/bifrost/${var.environment}/opensearch"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_cloudwatch_log_resource_policy" "search" {
  policy_name = "${local.name}-opensearch"
  policy_document = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "es.amazonaws.com" }
      Action    = ["logs:PutLogEvents", "logs:CreateLogStream"]
      Resource  = "${aws_cloudwatch_log_group.search.arn}:*"
    }]
  })
}
