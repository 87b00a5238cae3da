# Bifrost on Google Cloud: the AWS reference (../aws) mapped onto GCP's services
# (../README.md has the table). The five security zones are subnets of one VPC with firewall
# rules between them; the data zone is reached through private services access.
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

locals {
  name   = "bifrost-${var.environment}"
  zones  = ["public", "web", "service", "data", "storage"]
  labels = { project = "bifrost", environment = var.environment }
}

resource "google_compute_network" "main" {
  name                    = local.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "zone" {
  for_each                 = { for index, zone in local.zones : zone => index }
  name                     = "${local.name}-${each.key}"
  network                  = google_compute_network.main.id
  region                   = var.region
  ip_cidr_range            = cidrsubnet(var.network_cidr, 4, each.value)
  private_ip_google_access = true
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Cloud SQL and Memorystore live in Google's network, peered into the data zone's range.
resource "google_compute_global_address" "data" {
  name          = "${local.name}-data"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "data" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.data.name]
}

# Traffic between zones: only the paths the AWS security groups allow (../aws/network.tf).
resource "google_compute_firewall" "path" {
  for_each = {
    lb-web       = { from = "public", to = "web", ports = ["8000"] }
    web-service  = { from = "web", to = "service", ports = ["4200"] }
    service-data = { from = "service", to = "data", ports = ["5432", "6378", "9200"] }
    web-data     = { from = "web", to = "data", ports = ["5432", "6378", "9200"] }
    service-nfs  = { from = "service", to = "storage", ports = ["2049"] }
  }
  name          = "${local.name}-${each.key}"
  network       = google_compute_network.main.id
  direction     = "INGRESS"
  source_ranges = [google_compute_subnetwork.zone[each.value.from].ip_cidr_range]
  target_tags   = ["bifrost-${each.value.to}"]
  allow {
    protocol = "tcp"
    ports    = each.value.ports
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_kms_key_ring" "main" {
  name     = local.name
  location = var.region
}

resource "google_kms_crypto_key" "main" {
  name            = "${local.name}-at-rest"
  key_ring        = google_kms_key_ring.main.id
  rotation_period = "7776000s"
  lifecycle {
    prevent_destroy = true
  }
}

module "database" {
  source       = "./modules/database"
  name         = local.name
  region       = var.region
  network      = google_compute_network.main.id
  tier         = var.database_tier
  kms_key      = google_kms_crypto_key.main.id
  labels       = local.labels
  depends_on   = [google_service_networking_connection.data]
  replica_zone = var.replica_zone
}

module "cache" {
  source     = "./modules/cache"
  name       = local.name
  region     = var.region
  network    = google_compute_network.main.id
  memory_gb  = var.cache_memory_gb
  kms_key    = google_kms_crypto_key.main.id
  labels     = local.labels
  depends_on = [google_service_networking_connection.data]
}

module "storage" {
  source                  = "./modules/storage"
  name                    = local.name
  location                = var.storage_location
  kms_key                 = google_kms_crypto_key.main.id
  archive_transition_days = var.archive_transition_days
  labels                  = local.labels
}

module "compute" {
  source          = "./modules/compute"
  name            = local.name
  region          = var.region
  network         = google_compute_network.main.id
  web_subnet      = google_compute_subnetwork.zone["web"].id
  service_subnet  = google_compute_subnetwork.zone["service"].id
  kms_key         = google_kms_crypto_key.main.id
  gpu_type        = var.gpu_type
  gpu_nodes_max   = var.gpu_nodes_max
  admin_cidrs     = var.admin_cidrs
  labels          = local.labels
  storage_buckets = module.storage.buckets
}
