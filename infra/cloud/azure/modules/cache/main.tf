# Azure Cache for Redis, Premium (zone-redundant replicas, injected into the data subnet):
# TLS 1.2 only, no plain port, no public access.
variable "name" { type = string }
variable "location" { type = string }
variable "resource_group_name" { type = string }
variable "subnet_id" { type = string }
variable "capacity" { type = number }
variable "tags" { type = map(string) }

resource "azurerm_redis_cache" "main" {
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  sku_name                      = "Premium"
  family                        = "P"
  capacity                      = var.capacity
  replicas_per_master           = 1
  zones                         = ["1", "2"]
  subnet_id                     = var.subnet_id
  non_ssl_port_enabled          = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  tags                          = var.tags
  redis_configuration {
    authentication_enabled = true
  }
}

output "host" {
  value = azurerm_redis_cache.main.hostname
}
