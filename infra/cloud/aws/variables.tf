variable "environment" {
  description = "Name of this deployment (prod, staging): prefixes every resource"
  type        = string
  default     = "prod"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment: 2-16 lower-case letters, digits or dashes."
  }
}

variable "region" {
  description = "Primary region"
  type        = string
  default     = "eu-west-1"
}

variable "replica_region" {
  description = "Region the archive tier is replicated to"
  type        = string
  default     = "eu-central-1"
}

variable "availability_zones" {
  description = "Availability zones of the primary region (two or more: every zone's subnet is in each)"
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b"]
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Two or three availability zones (Aurora, ElastiCache and the load balancer need two)."
  }
}

variable "vpc_cidr" {
  description = "Address range of the VPC; each security zone gets a /20 per availability zone"
  type        = string
  default     = "10.40.0.0/16"
}

variable "admin_cidrs" {
  description = "Administrators' VPN ranges allowed to reach the Prefect UI through the load balancer"
  type        = list(string)
  default     = []
}

variable "image" {
  description = "The Bifrost image (infra/containers/Dockerfile) in ECR: API, CLI and workers"
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the API's public host name (HTTPS at the load balancer)"
  type        = string
}

variable "media_certificate_arn" {
  description = "ACM certificate (us-east-1) of the review media host name served by CloudFront"
  type        = string
}

variable "media_domain" {
  description = "Host name of the review media distribution"
  type        = string
}

variable "api_count" {
  description = "API tasks behind the load balancer (three or more spread over the zones)"
  type        = number
  default     = 3
}

variable "database_instance_class" {
  description = "Aurora instance class of the writer and the reader"
  type        = string
  default     = "db.r6g.large"
}

variable "cache_node_type" {
  description = "ElastiCache node type"
  type        = string
  default     = "cache.r6g.large"
}

variable "search_instance_type" {
  description = "OpenSearch data node type"
  type        = string
  default     = "r6g.large.search"
}

variable "gpu_instance_type" {
  description = "EC2 type of the GPU render hosts (the bifrost-gpu pool's capacity)"
  type        = string
  default     = "g5.2xlarge"
}

variable "gpu_hosts_max" {
  description = "Most GPU hosts the render capacity scales out to"
  type        = number
  default     = 8
}

variable "archive_transition_days" {
  description = "Days after which archive-tier objects move to Glacier Deep Archive"
  type        = number
  default     = 30
}

variable "hot_noncurrent_days" {
  description = "Days a replaced or deleted hot-tier object version is kept"
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "CloudWatch log retention"
  type        = number
  default     = 365
}

variable "review_signing_public_key" {
  description = "PEM public key of the key pair the API signs review media URLs with (CloudFront key group)"
  type        = string
}

variable "review_countries" {
  description = "Countries (ISO 3166-1 alpha-2) from which review media may be watched"
  type        = list(string)
  default     = ["GB", "IE", "FR", "DE", "US", "CA"]
}
