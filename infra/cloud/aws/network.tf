# The seed's five security zones, each a subnet per availability zone with its own route table
# and network ACL, and security groups that let each tier reach only the next one:
#
#   public   the load balancer and the NAT gateways (CloudFront is AWS's edge, outside the VPC)
#   web      the API tasks
#   service  the Prefect server, the Prefect workers and the flow runs they start (cpu, gpu)
#   data     Aurora PostgreSQL, ElastiCache Redis, OpenSearch: no route to the internet
#   storage  EFS mount targets and the S3 gateway endpoint: no route to the internet

locals {
  zones = ["public", "web", "service", "data", "storage"]
  # Zone z, availability zone a: the /20 numbered z * 3 + a (three AZs at most).
  subnets = {
    for pair in setproduct(range(length(local.zones)), range(length(var.availability_zones))) :
    "${local.zones[pair[0]]}-${pair[1]}" => {
      zone = local.zones[pair[0]]
      az   = var.availability_zones[pair[1]]
      cidr = cidrsubnet(var.vpc_cidr, 4, pair[0] * 3 + pair[1])
    }
  }
  zone_subnets = { for zone in local.zones : zone => [for key, s in local.subnets : aws_subnet.zone[key].id if s.zone == zone] }
  zone_cidrs   = { for zone in local.zones : zone => [for s in local.subnets : s.cidr if s.zone == zone] }
  # Zones whose traffic to the internet leaves through NAT (image pulls, AWS APIs, webhooks).
  egress_zones = ["web", "service"]
}

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.name }
}

# Nothing may use the default security group: it allows everything between its members.
resource "aws_default_security_group" "closed" {
  vpc_id = aws_vpc.main.id
}

resource "aws_flow_log" "vpc" {
  vpc_id               = aws_vpc.main.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow.arn
  iam_role_arn         = aws_iam_role.flow_log.arn
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/bifrost/${var.environment}/vpc-flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_iam_role" "flow_log" {
  name = "${local.name}-flow-log"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "vpc-flow-logs.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "flow_log" {
  role = aws_iam_role.flow_log.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow.arn}:*"
    }]
  })
}

resource "aws_subnet" "zone" {
  for_each          = local.subnets
  vpc_id            = aws_vpc.main.id
  availability_zone = each.value.az
  cidr_block        = each.value.cidr
  tags              = { Name = "${local.name}-${each.key}", Zone = each.value.zone }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
}

resource "aws_eip" "nat" {
  for_each = toset(var.availability_zones)
  domain   = "vpc"
}

resource "aws_nat_gateway" "zone" {
  for_each      = toset(var.availability_zones)
  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.zone["public-${index(var.availability_zones, each.key)}"].id
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }
}

# One route table per private subnet: egress zones go out through their own AZ's NAT; the data
# and storage zones have only the VPC's local route (and the S3 endpoint's prefix list).
resource "aws_route_table" "private" {
  for_each = { for key, s in local.subnets : key => s if s.zone != "public" }
  vpc_id   = aws_vpc.main.id
  dynamic "route" {
    for_each = contains(local.egress_zones, each.value.zone) ? [each.value.az] : []
    content {
      cidr_block     = "0.0.0.0/0"
      nat_gateway_id = aws_nat_gateway.zone[route.value].id
    }
  }
  tags = { Name = "${local.name}-${each.key}" }
}

resource "aws_route_table_association" "zone" {
  for_each       = local.subnets
  subnet_id      = aws_subnet.zone[each.key].id
  route_table_id = each.value.zone == "public" ? aws_route_table.public.id : aws_route_table.private[each.key].id
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for table in aws_route_table.private : table.id]
}

# Network ACLs: the data and storage zones answer only inside the VPC.
resource "aws_network_acl" "isolated" {
  for_each   = toset(["data", "storage"])
  vpc_id     = aws_vpc.main.id
  subnet_ids = [for key, s in local.subnets : aws_subnet.zone[key].id if s.zone == each.key]
  ingress {
    rule_no    = 100
    protocol   = "-1"
    action     = "allow"
    cidr_block = var.vpc_cidr
    from_port  = 0
    to_port    = 0
  }
  egress {
    rule_no    = 100
    protocol   = "-1"
    action     = "allow"
    cidr_block = var.vpc_cidr
    from_port  = 0
    to_port    = 0
  }
  tags = { Name = "${local.name}-${each.key}" }
}

# Security groups: one per role; ingress only from the groups of the zone in front.
resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Public zone: the API load balancer"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "api" {
  name        = "${local.name}-api"
  description = "Web zone: API tasks"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "prefect" {
  name        = "${local.name}-prefect"
  description = "Service zone: the Prefect server"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "worker" {
  name        = "${local.name}-worker"
  description = "Service zone: Prefect workers and the flow runs they start"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "database" {
  name        = "${local.name}-database"
  description = "Data zone: Aurora PostgreSQL"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "cache" {
  name        = "${local.name}-cache"
  description = "Data zone: ElastiCache Redis"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "search" {
  name        = "${local.name}-search"
  description = "Data zone: OpenSearch"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "files" {
  name        = "${local.name}-files"
  description = "Storage zone: EFS mount targets"
  vpc_id      = aws_vpc.main.id
}

locals {
  # from -> to on port: every allowed path between the zones, and nothing else.
  paths = {
    alb-api         = { from = "alb", to = "api", port = 8000, what = "HTTP to the API tasks" }
    alb-prefect     = { from = "alb", to = "prefect", port = 4200, what = "Prefect UI for administrators" }
    api-prefect     = { from = "api", to = "prefect", port = 4200, what = "API starts flow runs" }
    worker-prefect  = { from = "worker", to = "prefect", port = 4200, what = "workers poll their pools" }
    api-database    = { from = "api", to = "database", port = 5432, what = "API reads and writes" }
    worker-database = { from = "worker", to = "database", port = 5432, what = "flow runs write versions" }
    prefect-db      = { from = "prefect", to = "database", port = 5432, what = "Prefect's own database" }
    api-cache       = { from = "api", to = "cache", port = 6379, what = "API cache" }
    worker-cache    = { from = "worker", to = "cache", port = 6379, what = "flow runs invalidate the cache" }
    api-search      = { from = "api", to = "search", port = 443, what = "search queries" }
    worker-search   = { from = "worker", to = "search", port = 443, what = "indexing" }
    worker-files    = { from = "worker", to = "files", port = 2049, what = "NFS render root" }
  }
  groups = {
    alb      = aws_security_group.alb.id
    api      = aws_security_group.api.id
    prefect  = aws_security_group.prefect.id
    worker   = aws_security_group.worker.id
    database = aws_security_group.database.id
    cache    = aws_security_group.cache.id
    search   = aws_security_group.search.id
    files    = aws_security_group.files.id
  }
}

resource "aws_vpc_security_group_ingress_rule" "path" {
  for_each                     = local.paths
  security_group_id            = local.groups[each.value.to]
  referenced_security_group_id = local.groups[each.value.from]
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.what
}

resource "aws_vpc_security_group_egress_rule" "path" {
  for_each                     = local.paths
  security_group_id            = local.groups[each.value.from]
  referenced_security_group_id = local.groups[each.value.to]
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.what
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS from clients (the WAF filters in front)"
}

# HTTPS out of the web and service zones (through NAT): ECR, Secrets Manager, S3, webhooks.
resource "aws_vpc_security_group_egress_rule" "https_out" {
  for_each          = { api = aws_security_group.api.id, prefect = aws_security_group.prefect.id, worker = aws_security_group.worker.id }
  security_group_id = each.value
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS to AWS APIs and registries"
}
