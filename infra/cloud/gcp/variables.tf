variable "project" {
  description = "Google Cloud project id"
  type        = string
}

variable "environment" {
  description = "Name of this deployment (prod, staging): prefixes every resource"
  type        = string
  default     = "prod"
}

variable "region" {
  description = "Primary region"
  type        = string
  default     = "europe-west1"
}

variable "replica_zone" {
  description = "Zone of the Cloud SQL read replica"
  type        = string
  default     = "europe-west1-c"
}

variable "network_cidr" {
  description = "Address range of the VPC; the cluster subnet is its first /20"
  type        = string
  default     = "10.42.0.0/16"
}

variable "storage_location" {
  description = "Location of the buckets: a dual- or multi-region replicates them across regions"
  type        = string
  default     = "EUR4"
}

variable "database_tier" {
  description = "Cloud SQL machine tier of the primary and the replica"
  type        = string
  default     = "db-custom-4-16384"
}

variable "cache_memory_gb" {
  description = "Memorystore capacity"
  type        = number
  default     = 5
}

variable "gpu_type" {
  description = "Accelerator of the GPU node pool (the bifrost-gpu work pool)"
  type        = string
  default     = "nvidia-l4"
}

variable "gpu_nodes_max" {
  description = "Most GPU nodes the render pool scales to"
  type        = number
  default     = 8
}

variable "admin_cidrs" {
  description = "Ranges allowed to reach the GKE control plane"
  type        = list(string)
  default     = []
}

variable "archive_transition_days" {
  description = "Days after which archive-tier objects move to the ARCHIVE storage class"
  type        = number
  default     = 30
}
