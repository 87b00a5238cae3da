variable "environment" {
  description = "Name of this deployment (prod, staging): prefixes every resource"
  type        = string
  default     = "prod"
}

variable "location" {
  description = "Primary region (the storage account's geo-replica is Azure's pair of it)"
  type        = string
  default     = "westeurope"
}

variable "network_cidr" {
  description = "Address space of the virtual network; each subnet gets a /20"
  type        = string
  default     = "10.44.0.0/16"
}

variable "database_sku" {
  description = "PostgreSQL flexible server SKU of the primary and the replica"
  type        = string
  default     = "GP_Standard_D4ds_v5"
}

variable "cache_capacity" {
  description = "Azure Cache for Redis Premium size (P1..P5)"
  type        = number
  default     = 1
}

variable "gpu_vm_size" {
  description = "VM size of the GPU node pool (the bifrost-gpu work pool)"
  type        = string
  default     = "Standard_NC8as_T4_v3"
}

variable "gpu_nodes_max" {
  description = "Most GPU nodes the render pool scales to"
  type        = number
  default     = 8
}

variable "archive_transition_days" {
  description = "Days after which archive-tier blobs move to the Archive access tier"
  type        = number
  default     = 30
}

variable "key_expiration_date" {
  description = "Expiry (RFC 3339) of the at-rest key version; the rotation policy renews it before"
  type        = string
  default     = "2030-01-01T00:00:00Z"
}
