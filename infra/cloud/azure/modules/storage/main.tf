# The hot and archive tiers as containers of one storage account: geo-zone-redundant (RA-GZRS:
# copies in three zones and in the paired region), the customer key with infrastructure
# encryption, HTTPS and TLS 1.2 only, no shared keys, reached only from the cluster subnet (its
# service endpoint). The archive container's blobs move to the Archive tier; hot versions expire.
variable "name" { type = string }
variable "location" { type = string }
variable "resource_group_name" { type = string }
variable "subnet_ids" { type = list(string) }
variable "key_vault_key_id" { type = string }
variable "identity_id" { type = string }
variable "archive_transition_days" { type = number }
variable "log_workspace_id" { type = string }
variable "tags" { type = map(string) }

resource "azurerm_storage_account" "tiers" {
  name                              = substr(replace("${var.name}tiers", "-", ""), 0, 24)
  location                          = var.location
  resource_group_name               = var.resource_group_name
  account_tier                      = "Standard"
  account_replication_type          = "RAGZRS"
  account_kind                      = "StorageV2"
  is_hns_enabled                    = true
  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  shared_access_key_enabled         = false
  allow_nested_items_to_be_public   = false
  public_network_access_enabled     = false
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  default_to_oauth_authentication   = true
  tags                              = var.tags
  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }
  customer_managed_key {
    key_vault_key_id          = var.key_vault_key_id
    user_assigned_identity_id = var.identity_id
  }
  network_rules {
    default_action             = "Deny"
    bypass                     = ["AzureServices", "Logging", "Metrics"]
    virtual_network_subnet_ids = var.subnet_ids
  }
  blob_properties {
    delete_retention_policy {
      days = 30
    }
    container_delete_retention_policy {
      days = 30
    }
  }
  sas_policy {
    expiration_period = "01.00:00:00"
  }
  queue_properties {
    logging {
      delete                = true
      read                  = true
      write                 = true
      version               = "1.0"
      retention_policy_days = 30
    }
  }
  #checkov:skip=CKV2_AZURE_1:The customer-managed key is set above (customer_managed_key); the check looks for a separate azurerm_storage_account_customer_managed_key
  #checkov:skip=CKV2_AZURE_33:Reached through the zones' service endpoints (network_rules), not a private endpoint
}

resource "azurerm_storage_container" "tier" {
  for_each              = toset(["hot", "archive"])
  name                  = each.key
  storage_account_id    = azurerm_storage_account.tiers.id
  container_access_type = "private"
  #checkov:skip=CKV2_AZURE_21:Blob reads are logged by the diagnostic setting below (StorageRead); the storage insights the check wants need the account's shared key, which is disabled
}

resource "azurerm_storage_management_policy" "tiers" {
  storage_account_id = azurerm_storage_account.tiers.id
  rule {
    name    = "archive"
    enabled = true
    filters {
      prefix_match = ["archive/"]
      blob_types   = ["blockBlob"]
    }
    actions {
      base_blob {
        tier_to_archive_after_days_since_modification_greater_than = var.archive_transition_days
      }
    }
  }
  rule {
    name    = "hot-old-versions"
    enabled = true
    filters {
      prefix_match = ["hot/"]
      blob_types   = ["blockBlob"]
    }
    actions {
      version {
        delete_after_days_since_creation = 30
      }
    }
  }
}

# Every read, write and delete of a blob is logged (who fetched which frames, when).
resource "azurerm_monitor_diagnostic_setting" "blobs" {
  name                       = "${var.name}-blobs"
  target_resource_id         = "${azurerm_storage_account.tiers.id}/blobServices/default"
  log_analytics_workspace_id = var.log_workspace_id
  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

output "account_id" {
  value = azurerm_storage_account.tiers.id
}

output "roots" {
  value = { for tier in ["hot", "archive"] : tier => "abfs://${tier}@${azurerm_storage_account.tiers.name}.dfs.core.windows.net/" }
}
