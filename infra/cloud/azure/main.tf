# Bifrost on Azure: the AWS reference (../aws) mapped onto Azure's services
# (../README.md has the table). Subnets by what they hold, each with a network security group:
#   cluster   web and service zones: AKS nodes (API, Prefect server, workers) and the Key Vault
#             private endpoint; the storage account's service endpoint (storage zone)
#   database  data zone: PostgreSQL flexible servers (delegated subnet), from the cluster only
#   cache     data zone: Azure Cache for Redis (injected), from the cluster only
# The public zone (Application Gateway with a WAF in front of the API) is not written here.
terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.0"
    }
  }
}

provider "azurerm" {
  features {}
}

locals {
  name = "bifrost-${var.environment}"
  tags = { project = "bifrost", environment = var.environment }
  # subnet -> (its /20 number, the ports the cluster may open in it; null: the cluster itself)
  subnets = {
    cluster  = { index = 0, ports = null }
    database = { index = 1, ports = ["5432"] }
    cache    = { index = 2, ports = ["6380"] }
  }
}

data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "main" {
  name     = local.name
  location = var.location
  tags     = local.tags
}

resource "azurerm_virtual_network" "main" {
  name                = local.name
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  address_space       = [var.network_cidr]
  tags                = local.tags
}

resource "azurerm_subnet" "zone" {
  for_each             = local.subnets
  name                 = each.key
  resource_group_name  = azurerm_resource_group.main.name
  virtual_network_name = azurerm_virtual_network.main.name
  address_prefixes     = [cidrsubnet(var.network_cidr, 4, each.value.index)]
  service_endpoints    = each.key == "cluster" ? ["Microsoft.Storage"] : []
  dynamic "delegation" {
    # PostgreSQL flexible servers with private access need a subnet delegated to them.
    for_each = each.key == "database" ? ["postgres"] : []
    content {
      name = "postgres"
      service_delegation {
        name    = "Microsoft.DBforPostgreSQL/flexibleServers"
        actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
      }
    }
  }
}

# The data subnets admit the cluster on their service's port and nothing else from the network.
resource "azurerm_network_security_group" "zone" {
  for_each            = local.subnets
  name                = "${local.name}-${each.key}"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
  dynamic "security_rule" {
    for_each = each.value.ports == null ? [] : [each.value.ports]
    content {
      name                       = "from-cluster"
      priority                   = 100
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_address_prefix      = cidrsubnet(var.network_cidr, 4, local.subnets.cluster.index)
      source_port_range          = "*"
      destination_address_prefix = "*"
      destination_port_ranges    = security_rule.value
    }
  }
  dynamic "security_rule" {
    for_each = each.value.ports == null ? [] : ["deny"]
    content {
      name                       = "deny-vnet"
      priority                   = 4000
      direction                  = "Inbound"
      access                     = "Deny"
      protocol                   = "*"
      source_address_prefix      = "VirtualNetwork"
      source_port_range          = "*"
      destination_address_prefix = "*"
      destination_port_range     = "*"
    }
  }
}

resource "azurerm_subnet_network_security_group_association" "zone" {
  for_each                  = local.subnets
  subnet_id                 = azurerm_subnet.zone[each.key].id
  network_security_group_id = azurerm_network_security_group.zone[each.key].id
}

# Secrets (database URLs, the Redis key) in Key Vault; the workloads read them through their
# managed identities.
resource "azurerm_key_vault" "main" {
  name                = replace("${local.name}-kv", "-", "")
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tenant_id           = data.azurerm_client_config.current.tenant_id
  # Reached through its private endpoint in the cluster subnet only.
  sku_name                      = "premium"
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  enable_rbac_authorization     = true
  public_network_access_enabled = false
  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
  }
  tags = local.tags
}

resource "azurerm_private_dns_zone" "vault" {
  name                = "privatelink.vaultcore.azure.net"
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_private_dns_zone_virtual_network_link" "vault" {
  name                  = "${local.name}-vault"
  resource_group_name   = azurerm_resource_group.main.name
  private_dns_zone_name = azurerm_private_dns_zone.vault.name
  virtual_network_id    = azurerm_virtual_network.main.id
}

resource "azurerm_private_endpoint" "vault" {
  name                = "${local.name}-vault"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.zone["cluster"].id
  private_service_connection {
    name                           = "vault"
    private_connection_resource_id = azurerm_key_vault.main.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
  private_dns_zone_group {
    name                 = "vault"
    private_dns_zone_ids = [azurerm_private_dns_zone.vault.id]
  }
}

resource "azurerm_log_analytics_workspace" "main" {
  name                = local.name
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  sku                 = "PerGB2018"
  retention_in_days   = 365
  tags                = local.tags
}

resource "azurerm_key_vault_key" "at_rest" {
  name            = "${local.name}-at-rest"
  key_vault_id    = azurerm_key_vault.main.id
  key_type        = "RSA-HSM"
  key_size        = 3072
  key_opts        = ["wrapKey", "unwrapKey"]
  expiration_date = var.key_expiration_date
  rotation_policy {
    automatic {
      time_before_expiry = "P30D"
    }
    expire_after = "P365D"
  }
}

resource "azurerm_user_assigned_identity" "data" {
  name                = "${local.name}-data"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
}

resource "azurerm_role_assignment" "data_key" {
  scope                = azurerm_key_vault.main.id
  role_definition_name = "Key Vault Crypto Service Encryption User"
  principal_id         = azurerm_user_assigned_identity.data.principal_id
}

module "database" {
  source              = "./modules/database"
  name                = local.name
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.zone["database"].id
  virtual_network_id  = azurerm_virtual_network.main.id
  sku_name            = var.database_sku
  key_id              = azurerm_key_vault_key.at_rest.id
  identity_id         = azurerm_user_assigned_identity.data.id
  tags                = local.tags
}

module "cache" {
  source              = "./modules/cache"
  name                = local.name
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.zone["cache"].id
  capacity            = var.cache_capacity
  tags                = local.tags
}

module "storage" {
  source                  = "./modules/storage"
  name                    = local.name
  location                = azurerm_resource_group.main.location
  resource_group_name     = azurerm_resource_group.main.name
  subnet_ids              = [azurerm_subnet.zone["cluster"].id]
  key_vault_key_id        = azurerm_key_vault_key.at_rest.versionless_id
  identity_id             = azurerm_user_assigned_identity.data.id
  archive_transition_days = var.archive_transition_days
  log_workspace_id        = azurerm_log_analytics_workspace.main.id
  tags                    = local.tags
}

module "compute" {
  source              = "./modules/compute"
  name                = local.name
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.zone["cluster"].id
  gpu_vm_size         = var.gpu_vm_size
  gpu_nodes_max       = var.gpu_nodes_max
  key_vault_id        = azurerm_key_vault.main.id
  disk_encryption_set = azurerm_disk_encryption_set.main.id
  storage_account_id  = module.storage.account_id
  log_workspace_id    = azurerm_log_analytics_workspace.main.id
  tags                = local.tags
}

resource "azurerm_disk_encryption_set" "main" {
  name                = "${local.name}-disks"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  key_vault_key_id    = azurerm_key_vault_key.at_rest.versionless_id
  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.data.id]
  }
}
