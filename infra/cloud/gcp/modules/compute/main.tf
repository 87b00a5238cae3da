# GKE runs the API, the Prefect server and the workers (one image); node pools match the work
# pools: `cpu` for bifrost-cpu workers and the API, `gpu` for bifrost-gpu (render chunks).
# Private nodes, Workload Identity (each service account gets only its buckets), shielded nodes,
# secrets encrypted at the application layer with the customer key.
variable "name" { type = string }
variable "region" { type = string }
variable "network" { type = string }
variable "subnet" { type = string }
variable "kms_key" { type = string }
variable "gpu_type" { type = string }
variable "gpu_nodes_max" { type = number }
variable "admin_cidrs" { type = list(string) }
variable "labels" { type = map(string) }
variable "storage_buckets" { type = map(string) }

resource "google_service_account" "nodes" {
  account_id   = "${var.name}-nodes"
  display_name = "Bifrost GKE nodes (logs and metrics only)"
}

resource "google_container_cluster" "main" {
  name                        = var.name
  location                    = var.region
  network                     = var.network
  subnetwork                  = var.subnet
  remove_default_node_pool    = true
  initial_node_count          = 1
  deletion_protection         = true
  enable_shielded_nodes       = true
  enable_intranode_visibility = true
  resource_labels             = var.labels
  networking_mode             = "VPC_NATIVE"
  ip_allocation_policy {}
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = true
    master_ipv4_cidr_block  = "172.16.0.0/28"
  }
  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.admin_cidrs
      content {
        cidr_block = cidr_blocks.value
      }
    }
  }
  workload_identity_config {
    workload_pool = "${data.google_project.current.project_id}.svc.id.goog"
  }
  database_encryption {
    state    = "ENCRYPTED"
    key_name = var.kms_key
  }
  release_channel {
    channel = "REGULAR"
  }
  network_policy {
    enabled = true
  }
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }
  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }
  node_config {
    service_account = google_service_account.nodes.email
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC need a Workspace domain; access is by Workload Identity service accounts
  #checkov:skip=CKV_GCP_66:Binary authorization is enforced by the project's singleton policy (evaluation_mode above)
}

data "google_project" "current" {}

resource "google_container_node_pool" "pool" {
  for_each = {
    cpu = { machine = "n2-standard-8", min = 2, max = 10, gpu = false }
    gpu = { machine = "g2-standard-8", min = 0, max = var.gpu_nodes_max, gpu = true }
  }
  name     = each.key
  cluster  = google_container_cluster.main.id
  location = var.region
  autoscaling {
    min_node_count = each.value.min
    max_node_count = each.value.max
  }
  management {
    auto_repair  = true
    auto_upgrade = true
  }
  node_config {
    machine_type      = each.value.machine
    image_type        = "COS_CONTAINERD"
    service_account   = google_service_account.nodes.email
    boot_disk_kms_key = var.kms_key
    labels            = merge(var.labels, { "bifrost/pool" = "bifrost-${each.key}" })
    # The cpu pool serves the API too: Google's health checks may reach it (../../main.tf).
    tags = each.key == "gpu" ? ["bifrost-worker"] : ["bifrost-api", "bifrost-worker"]
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    dynamic "guest_accelerator" {
      for_each = each.value.gpu ? [var.gpu_type] : []
      content {
        type  = guest_accelerator.value
        count = 1
      }
    }
  }
}

# Workload Identity: the API's service account reads the tiers, the workers' writes them.
resource "google_service_account" "workload" {
  for_each     = toset(["api", "worker"])
  account_id   = "${var.name}-${each.key}"
  display_name = "Bifrost ${each.key}"
}

resource "google_storage_bucket_iam_member" "tier" {
  for_each = { for pair in setproduct(["api", "worker"], keys(var.storage_buckets)) : "${pair[0]}-${pair[1]}" => pair }
  bucket   = var.storage_buckets[each.value[1]]
  role     = each.value[0] == "api" ? "roles/storage.objectViewer" : "roles/storage.objectUser"
  member   = "serviceAccount:${google_service_account.workload[each.value[0]].email}"
}

resource "google_secret_manager_secret" "bifrost" {
  for_each  = toset(["api-database-url", "worker-database-url", "replica-urls", "prefect-database", "redis-url"])
  secret_id = "${var.name}-${each.key}"
  labels    = var.labels
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = var.kms_key
        }
      }
    }
  }
}

output "cluster" {
  value = google_container_cluster.main.name
}
