# Azure Database for PostgreSQL flexible server: zone-redundant high availability, geo-redundant
# backups, private access only (delegated data subnet), the customer key at rest, and a read
# replica for BIFROST_DATABASE_REPLICA_URLS.
variable "name" { type = string }
variable "location" { type = string }
variable "resource_group_name" { type = string }
variable "subnet_id" { type = string }
variable "virtual_network_id" { type = string }
variable "sku_name" { type = string }
variable "key_id" { type = string }
variable "identity_id" { type = string }
variable "tags" { type = map(string) }

resource "azurerm_private_dns_zone" "postgres" {
  name                = "${var.name}.postgres.database.azure.com"
  resource_group_name = var.resource_group_name
}

resource "azurerm_private_dns_zone_virtual_network_link" "postgres" {
  name                  = "${var.name}-postgres"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.postgres.name
  virtual_network_id    = var.virtual_network_id
}

resource "azurerm_postgresql_flexible_server" "primary" {
  name                          = "${var.name}-primary"
  location                      = var.location
  resource_group_name           = var.resource_group_name
  version                       = "16"
  sku_name                      = var.sku_name
  storage_mb                    = 262144
  backup_retention_days         = 35
  geo_redundant_backup_enabled  = true
  delegated_subnet_id           = var.subnet_id
  private_dns_zone_id           = azurerm_private_dns_zone.postgres.id
  public_network_access_enabled = false
  zone                          = "1"
  tags                          = var.tags
  authentication {
    active_directory_auth_enabled = true
    password_auth_enabled         = false
  }
  high_availability {
    mode                      = "ZoneRedundant"
    standby_availability_zone = "2"
  }
  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }
  customer_managed_key {
    key_vault_key_id                  = var.key_id
    primary_user_assigned_identity_id = var.identity_id
  }
  depends_on = [azurerm_private_dns_zone_virtual_network_link.postgres]
  #checkov:skip=CKV2_AZURE_57:Private access through the delegated subnet (no public endpoint), not a private endpoint
}

resource "azurerm_postgresql_flexible_server_configuration" "primary" {
  for_each = {
    require_secure_transport = "on"
    log_connections          = "on"
    log_disconnections       = "on"
    log_checkpoints          = "on"
    connection_throttling    = "on"
    log_statement            = "ddl"
  }
  server_id = azurerm_postgresql_flexible_server.primary.id
  name      = each.key
  value     = each.value
}

resource "azurerm_postgresql_flexible_server_database" "bifrost" {
  for_each  = toset(["bifrost", "prefect"])
  name      = each.key
  server_id = azurerm_postgresql_flexible_server.primary.id
}

resource "azurerm_postgresql_flexible_server" "replica" {
  name                          = "${var.name}-replica"
  location                      = var.location
  resource_group_name           = var.resource_group_name
  create_mode                   = "Replica"
  source_server_id              = azurerm_postgresql_flexible_server.primary.id
  version                       = "16"
  sku_name                      = var.sku_name
  storage_mb                    = 262144
  delegated_subnet_id           = var.subnet_id
  private_dns_zone_id           = azurerm_private_dns_zone.postgres.id
  public_network_access_enabled = false
  zone                          = "2"
  tags                          = var.tags
  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }
  customer_managed_key {
    key_vault_key_id                  = var.key_id
    primary_user_assigned_identity_id = var.identity_id
  }
  #checkov:skip=CKV_AZURE_136:A replica's backups are the primary's (geo-redundant there)
  #checkov:skip=CKV2_AZURE_57:Private access through the delegated subnet (no public endpoint), not a private endpoint
}

output "hosts" {
  value = {
    primary = azurerm_postgresql_flexible_server.primary.fqdn
    replica = azurerm_postgresql_flexible_server.replica.fqdn
  }
}
