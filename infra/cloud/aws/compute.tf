# ECS runs every Bifrost process from the one image (infra/containers/Dockerfile):
#
#   service         zone     capacity            what
#   api             web      Fargate             `bifrost serve`, var.api_count tasks behind the ALB
#   prefect-server  service  Fargate             `prefect server start` on Aurora (its own database)
#   worker-cpu      service  Fargate             `bifrost worker --pool bifrost-cpu`
#   worker-gpu      service  EC2 GPU hosts       `bifrost worker --pool bifrost-gpu --gpus 1`
#
# The work pools map onto them: bifrost-cpu and bifrost-gpu are process pools (their flow runs
# are subprocesses of the worker's task, deployments/flows.py). A studio that wants a task per
# flow run instead creates an ECS pool from deployments/pools/ecs.json and fills its variables
# from the output `ecs_pool_job_variables` (needs prefect-aws in the image).
locals {
  services = {
    api = {
      zone    = "web"
      command = ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
      cpu     = 1024
      memory  = 2048
      count   = var.api_count
      port    = 8000
      secrets = { BIFROST_DATABASE_URL = "api_database_url", BIFROST_DATABASE_REPLICA_URLS = "replica_urls", BIFROST_REDIS_URL = "redis_url" }
    }
    prefect-server = {
      zone    = "service"
      command = ["server", "start", "--host", "0.0.0.0", "--port", "4200"]
      cpu     = 1024
      memory  = 2048
      # One: several servers need Prefect's Redis messaging (prefect-redis), not in the image.
      count   = 1
      port    = 4200
      secrets = { PREFECT_API_DATABASE_CONNECTION_URL = "prefect_database" }
    }
    worker-cpu = {
      zone    = "service"
      command = ["worker", "--pool", "bifrost-cpu", "--metrics-port", "9101", "--metrics-address", "0.0.0.0"]
      cpu     = 4096
      memory  = 16384
      count   = 2
      port    = null
      secrets = { BIFROST_DATABASE_URL = "worker_database_url", BIFROST_REDIS_URL = "redis_url" }
    }
  }
  # What every Bifrost process is told: where the tiers are, where Prefect is.
  environment = {
    BIFROST_HOT_ROOT     = "s3://${aws_s3_bucket.tier["hot"].bucket}/"
    BIFROST_ARCHIVE_ROOT = "s3://${aws_s3_bucket.tier["archive"].bucket}/"
    BIFROST_LOG_JSON     = "true"
    BIFROST_RENDER_ROOT  = "/mnt/render"
    # The root file system is read-only: temporary files go to the task's scratch volume.
    TMPDIR          = "/var/lib/bifrost"
    PREFECT_API_URL = "http://prefect-server.${local.name}.internal:4200/api"
    AWS_REGION      = var.region
  }
  task_roles = toset(["api", "prefect-server", "worker"])
}

resource "aws_ecr_repository" "bifrost" {
  name                 = local.name
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.main.arn
  }
}

resource "aws_ecs_cluster" "main" {
  name = local.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.main.arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.tasks.name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "tasks" {
  name              = "/bifrost/${var.environment}/tasks"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_service_discovery_private_dns_namespace" "internal" {
  name = "${local.name}.internal"
  vpc  = aws_vpc.main.id
}

resource "aws_service_discovery_service" "prefect" {
  name = "prefect-server"
  dns_config {
    namespace_id = aws_service_discovery_private_dns_namespace.internal.id
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
  health_check_custom_config {
    failure_threshold = 1
  }
}

# Execution role: pulls the image, reads the secrets the task definitions name, writes logs.
resource "aws_iam_role" "execution" {
  name = "${local.name}-ecs-execution"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secrets" {
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = [for s in aws_secretsmanager_secret.bifrost : s.arn] },
      { Effect = "Allow", Action = ["kms:Decrypt"], Resource = [aws_kms_key.main.arn] },
    ]
  })
}

# Task roles: what each process may do in AWS (least privilege, see infra/README.md).
resource "aws_iam_role" "task" {
  for_each = local.task_roles
  name     = "${local.name}-${each.key}"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ecs-tasks.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

# The API reads (it signs review media URLs and serves blobs); it writes nothing to the tiers.
resource "aws_iam_role_policy" "api_storage" {
  role = aws_iam_role.task["api"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["s3:ListBucket"], Resource = [for b in aws_s3_bucket.tier : b.arn] },
      { Effect = "Allow", Action = ["s3:GetObject"], Resource = [for b in aws_s3_bucket.tier : "${b.arn}/*"] },
      { Effect = "Allow", Action = ["kms:Decrypt"], Resource = [aws_kms_key.main.arn] },
      { Effect = "Allow", Action = ["es:ESHttpGet", "es:ESHttpPost", "es:ESHttpHead"], Resource = ["${aws_opensearch_domain.main.arn}/*"] },
    ]
  })
}

# The workers write the tiers (ingest, publish, review media, archival) and the index.
resource "aws_iam_role_policy" "worker_storage" {
  role = aws_iam_role.task["worker"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["s3:ListBucket"], Resource = [for b in aws_s3_bucket.tier : b.arn] },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:RestoreObject", "s3:AbortMultipartUpload"]
        Resource = [for b in aws_s3_bucket.tier : "${b.arn}/*"]
      },
      { Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = [aws_kms_key.main.arn] },
      { Effect = "Allow", Action = ["es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete", "es:ESHttpHead"], Resource = ["${aws_opensearch_domain.main.arn}/*"] },
      { Effect = "Allow", Action = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"], Resource = [aws_efs_file_system.hot.arn] },
    ]
  })
}

resource "aws_ecs_task_definition" "service" {
  for_each                 = local.services
  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[startswith(each.key, "worker") ? "worker" : each.key].arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  container_definitions = jsonencode([merge(each.key == "prefect-server" ? { entryPoint = ["prefect"] } : {}, {
    name                   = each.key
    image                  = var.image
    command                = each.value.command
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    portMappings           = each.value.port == null ? [] : [{ containerPort = each.value.port, protocol = "tcp" }]
    environment            = [for k, v in local.environment : { name = k, value = v }]
    secrets                = [for k, v in each.value.secrets : { name = k, valueFrom = aws_secretsmanager_secret.bifrost[v].arn }]
    # Workers also mount the shared file system: render jobs write their frames there.
    mountPoints = concat(
      [{ sourceVolume = "scratch", containerPath = "/var/lib/bifrost" }],
      startswith(each.key, "worker") ? [{ sourceVolume = "render", containerPath = "/mnt/render" }] : [],
    )
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.tasks.name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  })])
  # The root file system is read-only: BIFROST_HOME (temporary files, the metrics of the API's
  # processes) is a task-local volume.
  volume {
    name = "scratch"
  }
  dynamic "volume" {
    for_each = startswith(each.key, "worker") ? ["render"] : []
    content {
      name = volume.value
      efs_volume_configuration {
        file_system_id     = aws_efs_file_system.hot.id
        transit_encryption = "ENABLED"
        authorization_config {
          access_point_id = aws_efs_access_point.workers.id
          iam             = "ENABLED"
        }
      }
    }
  }
}

resource "aws_ecs_service" "service" {
  for_each               = local.services
  name                   = each.key
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.service[each.key].arn
  desired_count          = each.value.count
  launch_type            = "FARGATE"
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  network_configuration {
    subnets          = local.zone_subnets[each.value.zone]
    security_groups  = [local.groups[each.key == "api" ? "api" : each.key == "prefect-server" ? "prefect" : "worker"]]
    assign_public_ip = false
  }
  dynamic "load_balancer" {
    for_each = each.key == "worker-cpu" ? {} : { (each.key) = each.value.port }
    content {
      target_group_arn = aws_lb_target_group.service[load_balancer.key].arn
      container_name   = load_balancer.key
      container_port   = load_balancer.value
    }
  }
  dynamic "service_registries" {
    for_each = each.key == "prefect-server" ? [aws_service_discovery_service.prefect.arn] : []
    content {
      registry_arn = service_registries.value
    }
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}

# GPU render hosts: EC2 instances of the ECS GPU-optimised AMI in the service zone, scaled by an
# ECS capacity provider; `bifrost worker --pool bifrost-gpu` runs on each with its GPU.
data "aws_ssm_parameter" "gpu_ami" {
  name = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
}

resource "aws_iam_role" "gpu_host" {
  name = "${local.name}-gpu-host"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy_attachment" "gpu_host" {
  role       = aws_iam_role.gpu_host.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "gpu_host" {
  name = "${local.name}-gpu-host"
  role = aws_iam_role.gpu_host.name
}

resource "aws_launch_template" "gpu" {
  name_prefix   = "${local.name}-gpu-"
  image_id      = data.aws_ssm_parameter.gpu_ami.value
  instance_type = var.gpu_instance_type
  iam_instance_profile {
    arn = aws_iam_instance_profile.gpu_host.arn
  }
  vpc_security_group_ids = [aws_security_group.worker.id]
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 200
      volume_type = "gp3"
      encrypted   = true
      kms_key_id  = aws_kms_key.main.arn
    }
  }
  monitoring {
    enabled = true
  }
  user_data = base64encode("#!/bin/bash\necho ECS_CLUSTER=${aws_ecs_cluster.main.name} >> /etc/ecs/ecs.config\necho ECS_ENABLE_GPU_SUPPORT=true >> /etc/ecs/ecs.config\n")
}

resource "aws_autoscaling_group" "gpu" {
  name_prefix           = "${local.name}-gpu-"
  min_size              = 0
  max_size              = var.gpu_hosts_max
  vpc_zone_identifier   = local.zone_subnets["service"]
  protect_from_scale_in = true
  launch_template {
    id      = aws_launch_template.gpu.id
    version = "$Latest"
  }
  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }
}

resource "aws_ecs_capacity_provider" "gpu" {
  name = "${local.name}-gpu"
  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.gpu.arn
    managed_termination_protection = "ENABLED"
    managed_scaling {
      status          = "ENABLED"
      target_capacity = 100
    }
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE", aws_ecs_capacity_provider.gpu.name]
}

resource "aws_ecs_task_definition" "worker_gpu" {
  family                   = "${local.name}-worker-gpu"
  requires_compatibilities = ["EC2"]
  network_mode             = "awsvpc"
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task["worker"].arn
  container_definitions = jsonencode([{
    name                   = "worker-gpu"
    image                  = var.image
    command                = ["worker", "--pool", "bifrost-gpu", "--gpus", "1", "--metrics-port", "9101", "--metrics-address", "0.0.0.0"]
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    cpu                    = 7168
    memory                 = 28672
    resourceRequirements   = [{ type = "GPU", value = "1" }]
    environment            = [for k, v in local.environment : { name = k, value = v }]
    secrets = [
      { name = "BIFROST_DATABASE_URL", valueFrom = aws_secretsmanager_secret.bifrost["worker_database_url"].arn },
      { name = "BIFROST_REDIS_URL", valueFrom = aws_secretsmanager_secret.bifrost["redis_url"].arn },
    ]
    mountPoints = [
      { sourceVolume = "scratch", containerPath = "/var/lib/bifrost" },
      { sourceVolume = "render", containerPath = "/mnt/render" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.tasks.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "worker-gpu"
      }
    }
  }])
  volume {
    name = "scratch"
  }
  volume {
    name = "render"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.hot.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.workers.id
        iam             = "ENABLED"
      }
    }
  }
}

resource "aws_ecs_service" "worker_gpu" {
  name            = "worker-gpu"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.worker_gpu.arn
  desired_count   = 0
  propagate_tags  = "SERVICE"
  capacity_provider_strategy {
    capacity_provider = aws_ecs_capacity_provider.gpu.name
    weight            = 1
  }
  network_configuration {
    subnets          = local.zone_subnets["service"]
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }
  # The render farm's size follows its queue (bifrost_render_chunks{state="pending"}), set by
  # an autoscaling policy or by hand; terraform does not fight it.
  lifecycle {
    ignore_changes = [desired_count]
  }
}
