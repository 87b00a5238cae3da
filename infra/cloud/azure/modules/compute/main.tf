# AKS runs the API, the Prefect server and the workers (one image). Node pools match the work
# pools: `system` and `cpu` (API, Prefect server, bifrost-cpu workers), `gpu` (bifrost-gpu).
# Private API server, Azure network policy, workload identity, Key Vault secrets through the CSI
# driver (rotated), OS disks encrypted with the customer key.
variable "name" { type = string }
variable "location" { type = string }
variable "resource_group_name" { type = string }
variable "subnet_id" { type = string }
variable "gpu_vm_size" { type = string }
variable "gpu_nodes_max" { type = number }
variable "key_vault_id" { type = string }
variable "disk_encryption_set" { type = string }
variable "storage_account_id" { type = string }
variable "log_workspace_id" { type = string }
variable "tags" { type = map(string) }

resource "azurerm_kubernetes_cluster" "main" {
  name                              = var.name
  location                          = var.location
  resource_group_name               = var.resource_group_name
  dns_prefix                        = var.name
  sku_tier                          = "Standard"
  private_cluster_enabled           = true
  local_account_disabled            = true
  oidc_issuer_enabled               = true
  workload_identity_enabled         = true
  role_based_access_control_enabled = true
  azure_policy_enabled              = true
  automatic_upgrade_channel         = "stable"
  disk_encryption_set_id            = var.disk_encryption_set
  tags                              = var.tags
  default_node_pool {
    name                         = "system"
    vm_size                      = "Standard_D4ds_v5"
    vnet_subnet_id               = var.subnet_id
    auto_scaling_enabled         = true
    min_count                    = 3
    max_count                    = 5
    max_pods                     = 50
    zones                        = ["1", "2", "3"]
    only_critical_addons_enabled = true
    host_encryption_enabled      = true
    os_disk_type                 = "Ephemeral"
  }
  identity {
    type = "SystemAssigned"
  }
  azure_active_directory_role_based_access_control {
    azure_rbac_enabled = true
  }
  network_profile {
    network_plugin = "azure"
    network_policy = "azure"
  }
  key_vault_secrets_provider {
    secret_rotation_enabled = true
  }
  oms_agent {
    log_analytics_workspace_id = var.log_workspace_id
  }
  #checkov:skip=CKV_AZURE_172:Secret rotation is on (key_vault_secrets_provider above); the check reads an older attribute layout
}

resource "azurerm_kubernetes_cluster_node_pool" "pool" {
  for_each = {
    cpu = { size = "Standard_D16ds_v5", min = 2, max = 10 }
    gpu = { size = var.gpu_vm_size, min = 0, max = var.gpu_nodes_max }
  }
  name                    = each.key
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.main.id
  vm_size                 = each.value.size
  vnet_subnet_id          = var.subnet_id
  auto_scaling_enabled    = true
  min_count               = each.value.min
  max_count               = each.value.max
  max_pods                = 50
  host_encryption_enabled = true
  node_labels             = { "bifrost/pool" = "bifrost-${each.key}" }
  node_taints             = each.key == "gpu" ? ["nvidia.com/gpu=present:NoSchedule"] : []
  tags                    = var.tags
}

# Workload identities: the API reads the tiers, the workers write them; both read Key Vault.
resource "azurerm_user_assigned_identity" "workload" {
  for_each            = toset(["api", "worker"])
  name                = "${var.name}-${each.key}"
  location            = var.location
  resource_group_name = var.resource_group_name
}

resource "azurerm_role_assignment" "storage" {
  for_each             = azurerm_user_assigned_identity.workload
  scope                = var.storage_account_id
  role_definition_name = each.key == "api" ? "Storage Blob Data Reader" : "Storage Blob Data Contributor"
  principal_id         = each.value.principal_id
}

resource "azurerm_role_assignment" "secrets" {
  for_each             = azurerm_user_assigned_identity.workload
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = each.value.principal_id
}

output "cluster" {
  value = azurerm_kubernetes_cluster.main.name
}
